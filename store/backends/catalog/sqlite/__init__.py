"""The SQLite catalog: one database in WAL mode; ``schema`` documents every table.

May import ``store.core`` and the rest of ``store.backends``.
"""
