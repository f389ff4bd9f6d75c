"""Services built on the engine: the session API, search, gc, recompression, verify and
migration.

May import ``store.core``, ``store.backends``, ``store.engine`` and each other (acyclically);
never ``store.cli``. Errors are ``store.core.errors`` exceptions; presenting them is the
front ends' job.
"""
