"""The pure core: chunking, codec framing, the session layout, legacy checks, text
extraction, the query language and plans.

Bytes and dicts in, values out: no file, database, thread or process I/O. May import
nothing else in ``store`` (and never ``os``, ``sqlite3``, ``threading``, ``subprocess``);
everything else may import it.
"""
