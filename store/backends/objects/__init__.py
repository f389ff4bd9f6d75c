"""The object store: ``store.ObjectStore``, the interface (immutable named objects: create-only
put, ranged get, size, list by prefix, delete), ``store.LocalObjectStore``, a directory;
``packs.Packer``, the one writer, which fills a local open pack and puts it sealed; and
``faults``, fault-injecting wrappers for tests.

May import ``store.core`` only.
"""
