"""The PostgreSQL catalog: many mounts on many machines share one database.

``catalog.PostgresCatalog`` implements ``store.backends.catalog.interface.Catalog``;
``schema.create_tables`` documents every table. Nothing else in the store knows SQL for
PostgreSQL, and no psycopg error leaves this package (``errors``).

May import ``store.core`` and the rest of ``store.backends`` (never the SQLite catalog).
"""
