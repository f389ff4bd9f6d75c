"""Local scale-out servers for trying sessionfs on shared engines, and for the tests.

``postgres.start_postgres`` runs a private PostgreSQL 15 cluster; ``seaweed.start_seaweed`` a
SeaweedFS ``weed mini`` with an S3 API. Both bind 127.0.0.1 only, keep their data in one
directory, and stop with ``stop()``. ``python -m contrib.scaleout`` starts both for a user.
"""
