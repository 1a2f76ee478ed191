"""High-availability and unusual-transport servers for store tests: Redis Sentinel, Redis Cluster, Redis over a
unix socket and over TLS, PgBouncer, PostgreSQL primary + streaming standby (see ``tests/ha/servers.py``)."""
