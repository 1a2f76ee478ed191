"""The floor: what a store's bare write costs, measured in the same run as the systems (enqueue only).

Not a job system. Each serial "enqueue" writes one job-sized record (a 32-character id and ~150 bytes of JSON)
in one round trip, with the least client code there can be and the durability offload uses on that store; the
bulk figure writes all records in one round trip. A system's single enqueue can approach this figure but not
pass it while it waits for its store to acknowledge each job, so "offload / floor" says how much of an
enqueue's time is offload's own and how much is the store's round trip.

- redis: ``RPUSH bench:floor <record>``, the command bytes prebuilt, sent on a plain socket, the one-line
  reply read back (no client library). Bulk: one ``RPUSH`` of every record.
- postgres: a prepared ``INSERT INTO floor_jobs (id, record) VALUES ($1, $2)`` in autocommit (psycopg), a
  primary key on ``id`` and nothing else; each commit waits for its WAL flush (the server's
  ``synchronous_commit``, as offload's enqueues do). Bulk: one ``INSERT ... SELECT FROM unnest(...)``.
- sqlite: an ``INSERT`` in its own transaction (``sqlite3``, WAL, ``synchronous=NORMAL``: offload's settings).
  Bulk: one transaction of ``executemany``.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import _harness

PG_DATABASE = "bench_offload"
REDIS_KEY = b"bench:floor"


def _record(job_id: str) -> bytes:
    return (f'{{"id":"{job_id}","func":"offload_jobs:noop","args":[],"kwargs":{{}},"queue":"default",'
            f'"title":null,"created_at":1763800000.123456,"max_attempts":1,"timeout":180.0}}').encode()


def _command(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class _Redis:
    """Just enough RESP for RPUSH, LLEN, SELECT and FLUSHDB: integer and status replies, one per command."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        db = (parts.path or "/0").strip("/") or "0"
        self.call(_command(b"SELECT", db.encode()))

    def call(self, command: bytes) -> bytes:
        self.sock.sendall(command)
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise _harness.CellError("Redis closed the connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        if line.startswith(b"-"):
            raise _harness.CellError(f"Redis answered {line.decode()}")
        return line[1:]

    def close(self) -> None:
        self.sock.close()


class FloorAdapter(_harness.Adapter):
    system = "floor"
    stores = ("sqlite", "redis", "postgres")
    packages = ("psycopg",)

    def __init__(self, store: str, workdir: str) -> None:
        super().__init__(store, workdir)
        self.redis: _Redis | None = None
        self.pg: Any = None
        self.sqlite: sqlite3.Connection | None = None
        if store == "redis":
            self.redis = _Redis(_harness.REDIS_URL)
        elif store == "postgres":
            import psycopg

            _harness.ensure_pg_database(psycopg, PG_DATABASE)
            self.pg = psycopg.connect(_harness.pg_dsn(PG_DATABASE), autocommit=True)
        else:
            self.db_path = os.path.join(workdir, "floor.db")

    def reset(self) -> None:
        if self.redis is not None:
            self.redis.call(_command(b"FLUSHDB"))
        elif self.pg is not None:
            self.pg.execute("DROP TABLE IF EXISTS floor_jobs")
            self.pg.execute('CREATE TABLE floor_jobs (id text COLLATE "C" PRIMARY KEY, record text NOT NULL)')
        else:
            if self.sqlite is not None:
                self.sqlite.close()
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.db_path + suffix):
                    os.unlink(self.db_path + suffix)
            self.sqlite = sqlite3.connect(self.db_path, isolation_level=None)
            self.sqlite.execute("PRAGMA journal_mode=WAL")
            self.sqlite.execute("PRAGMA synchronous=NORMAL")
            self.sqlite.execute("CREATE TABLE floor_jobs (id TEXT PRIMARY KEY, record TEXT NOT NULL)")

    def enqueue_serial(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> None:
        if self.redis is not None:
            call = self.redis.call
            for _ in args_list:
                call(_command(b"RPUSH", REDIS_KEY, _record(os.urandom(16).hex())))
        elif self.pg is not None:
            execute = self.pg.execute
            for _ in args_list:
                job_id = os.urandom(16).hex()
                execute("INSERT INTO floor_jobs (id, record) VALUES (%s, %s)", (job_id, _record(job_id).decode()),
                        prepare=True)
        else:
            assert self.sqlite is not None
            execute = self.sqlite.execute
            for _ in args_list:
                job_id = os.urandom(16).hex()
                execute("INSERT INTO floor_jobs (id, record) VALUES (?, ?)", (job_id, _record(job_id).decode()))

    def enqueue_bulk(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> None:
        ids = [os.urandom(16).hex() for _ in args_list]
        if self.redis is not None:
            self.redis.call(_command(b"RPUSH", REDIS_KEY, *[_record(i) for i in ids]))
        elif self.pg is not None:
            self.pg.execute("INSERT INTO floor_jobs (id, record) SELECT * FROM unnest(%s::text[], %s::text[])",
                            (ids, [_record(i).decode() for i in ids]))
        else:
            assert self.sqlite is not None
            self.sqlite.execute("BEGIN")
            self.sqlite.executemany("INSERT INTO floor_jobs (id, record) VALUES (?, ?)",
                                    [(i, _record(i).decode()) for i in ids])
            self.sqlite.execute("COMMIT")

    def remaining(self, total: int) -> int:
        if self.redis is not None:
            return int(self.redis.call(_command(b"LLEN", REDIS_KEY)))
        if self.pg is not None:
            return int(self.pg.execute("SELECT count(*) FROM floor_jobs").fetchone()[0])
        assert self.sqlite is not None
        return int(self.sqlite.execute("SELECT count(*) FROM floor_jobs").fetchone()[0])

    def worker_command(self, mode: str) -> tuple[list[str], dict[str, str], str]:
        raise _harness.CellError("the floor has no worker: it measures enqueue only")

    def server_info(self) -> dict[str, str]:
        return {}

    def close(self) -> None:
        if self.redis is not None:
            self.redis.close()
        if self.pg is not None:
            self.pg.close()
        if self.sqlite is not None:
            self.sqlite.close()


if __name__ == "__main__":
    _harness.main(FloorAdapter)
