"""procrastinate adapter (runs in bench/.venvs/procrastinate), PostgreSQL.

Worker: ``procrastinate --app=procrastinate_jobs.app worker --queues default --concurrency N`` with N = 2
(drain, latency) or 32 (io); LISTEN/NOTIFY on (default). Log level: procrastinate's CLI default (WARNING).
Completion: ``count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')``.
Enqueue: ``task.defer()`` (synchronous API) one at a time; bulk: ``task.batch_defer()`` (one statement).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import _harness
import psycopg

PG_DATABASE = "bench_procrastinate"
ARG_NAMES = {"noop": (), "sleep": (), "stamp": ("fifo", "sample"), "mark": ("path",), "record": ()}


class ProcrastinateAdapter(_harness.Adapter):
    system = "procrastinate"
    stores = ("postgres",)
    packages = ("procrastinate", "psycopg")

    def __init__(self, store: str, workdir: str) -> None:
        super().__init__(store, workdir)
        _harness.ensure_pg_database(psycopg, PG_DATABASE)
        self.env = {"BENCH_PROCRASTINATE_DSN": _harness.pg_dsn(PG_DATABASE)}
        os.environ.update(self.env)
        import procrastinate_jobs

        self.jobs = procrastinate_jobs
        self.conn = psycopg.connect(_harness.pg_dsn(PG_DATABASE), autocommit=True)
        has_schema = self.conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0]
        self.app = procrastinate_jobs.app.open()
        if not has_schema:
            self.app.schema_manager.apply_schema()

    def reset(self) -> None:
        self.conn.execute("TRUNCATE procrastinate_jobs, procrastinate_events, procrastinate_periodic_defers CASCADE")

    def enqueue_serial(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> None:
        task, names = getattr(self.jobs, kind), ARG_NAMES[kind]
        for args in args_list:
            task.defer(**dict(zip(names, args, strict=True)))

    def enqueue_bulk(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> None:
        task, names = getattr(self.jobs, kind), ARG_NAMES[kind]
        task.batch_defer(*[dict(zip(names, args, strict=True)) for args in args_list])

    def remaining(self, total: int) -> int:
        query = "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
        return int(self.conn.execute(query).fetchone()[0])

    def worker_command(self, mode: str) -> tuple[list[str], dict[str, str], str]:
        concurrency = _harness.IO_SLOTS if mode == "io" else _harness.slots(mode)
        argv = [self.script("procrastinate"), "--app=procrastinate_jobs.app", "worker", "--queues", "default",
                "--concurrency", str(concurrency)]
        body = "; tasks are coroutines, io awaits asyncio.sleep" if mode == "io" else "; tasks are coroutines"
        desc = f"procrastinate worker --concurrency {concurrency} (LISTEN/NOTIFY){body}; log level WARNING"
        return argv, self.env, desc

    def server_info(self) -> dict[str, str]:
        return {"postgres": str(self.conn.execute("SHOW server_version").fetchone()[0])}

    def close(self) -> None:
        self.app.close()
        self.conn.close()


if __name__ == "__main__":
    _harness.main(ProcrastinateAdapter)
