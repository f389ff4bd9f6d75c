"""The object store: append-only pack files of framed blocks in a local directory
(``packs.PackFiles``) and a fault-injecting wrapper for tests (``faults``).

May import ``store.core`` only.
"""
