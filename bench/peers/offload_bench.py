"""offload adapter (runs in offload's own venv, /work/main/.venv, where offload is installed editable);
stores: sqlite (a fresh file per cell), redis (database 15, key prefix ``bench``), postgres (database
``bench_offload``, schema ``offload``).

Worker: ``offload --store URL --site-id bench worker default --concurrency 2`` (drain, latency) or
``--concurrency 2 --threads 16`` (io: 32 job slots, the same as every other system's io mode), with
``--log-level warning --without-scheduler``. Completion: ``store.count(states=["queued", "started"])``.
Enqueue: ``Offload.enqueue`` one at a time; bulk: ``Offload.enqueue_many`` (one round trip).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from typing import Any

import _harness
import offload_jobs

PG_DATABASE = "bench_offload"
SITE_ID = "bench"
FUNCS = {"noop": offload_jobs.noop, "sleep": offload_jobs.sleep, "stamp": offload_jobs.stamp,
         "mark": offload_jobs.mark, "record": offload_jobs.record}


class OffloadAdapter(_harness.Adapter):
    system = "offload"
    stores = ("sqlite", "redis", "postgres")
    packages = ("offload", "redis", "psycopg")

    def __init__(self, store: str, workdir: str) -> None:
        super().__init__(store, workdir)
        if store == "sqlite":
            self.db_path = os.path.join(workdir, "offload.db")
            self.url = f"sqlite:///{self.db_path}"
        elif store == "redis":
            self.url = _harness.REDIS_URL + "?prefix=bench"
        else:
            import psycopg

            _harness.ensure_pg_database(psycopg, PG_DATABASE)
            self.url = _harness.pg_dsn(PG_DATABASE) + "?schema=offload"
        self.app = self._open()

    def _open(self) -> Any:
        from offload import Offload

        app = Offload(store=self.url, site_id=SITE_ID)
        app.store  # noqa: B018 - opens the store (connect + migrate) before anything is timed
        return app

    def reset(self) -> None:
        self.app.close()
        if self.store == "sqlite":
            for path in glob.glob(self.db_path + "*"):
                os.unlink(path)
        elif self.store == "redis":
            import redis

            redis.Redis.from_url(_harness.REDIS_URL).flushdb()
        else:
            import psycopg

            with psycopg.connect(_harness.pg_dsn(PG_DATABASE), autocommit=True) as conn:
                conn.execute("DROP SCHEMA IF EXISTS offload CASCADE")
        self.app = self._open()

    def enqueue_serial(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> None:
        func, enqueue = FUNCS[kind], self.app.enqueue
        for args in args_list:
            enqueue(func, args=list(args), queue="default")

    def enqueue_bulk(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> None:
        func = FUNCS[kind]
        self.app.enqueue_many([(func, list(args)) for args in args_list], queue="default")

    def remaining(self, total: int) -> int:
        return int(self.app.store.count(states=["queued", "started"]))

    def worker_command(self, mode: str) -> tuple[list[str], dict[str, str], str]:
        argv = [self.script("offload"), "--store", self.url, "--site-id", SITE_ID, "worker", "default",
                "--concurrency", str(_harness.slots(mode)), "--log-level", "warning", "--without-scheduler"]
        desc = f"offload worker --concurrency {_harness.slots(mode)}"
        if mode == "io":
            threads = max(1, _harness.IO_SLOTS // _harness.CONCURRENCY)
            argv += ["--threads", str(threads)]
            desc += f" --threads {threads}"
        return argv, {}, desc + " (executor child processes); log level WARNING"

    def server_info(self) -> dict[str, str]:
        if self.store == "redis":
            import redis

            return {"redis": str(redis.Redis.from_url(_harness.REDIS_URL).info("server")["redis_version"])}
        if self.store == "postgres":
            import psycopg

            with psycopg.connect(_harness.pg_dsn(PG_DATABASE)) as conn:
                return {"postgres": str(conn.execute("SHOW server_version").fetchone()[0])}
        import sqlite3

        return {"sqlite": sqlite3.sqlite_version}

    def close(self) -> None:
        self.app.close()


if __name__ == "__main__":
    _harness.main(OffloadAdapter)
