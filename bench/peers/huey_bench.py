"""Huey adapter (runs in bench/.venvs/huey); stores: redis (RedisHuey), sqlite (SqliteHuey).

drain/latency: ``huey_consumer -k thread -w 2``; io: ``-k greenlet -w 32`` through a launcher that
monkey-patches with gevent first. Log level: ``-q`` (warnings and errors only); the periodic-task scheduler
is off (``-n``). Completion: Huey removes a task from its queue when a worker takes it and keeps no record
of running tasks, so the driver counts results instead: every benchmark task returns True, Huey stores one
result per task, and done = number of stored results (``huey.result_count()``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import _harness

_JOBS = None


def _jobs() -> Any:
    global _JOBS
    if _JOBS is None:
        import huey_jobs

        _JOBS = huey_jobs
    return _JOBS


class HueyAdapter(_harness.Adapter):
    system = "huey"
    stores = ("redis", "sqlite")
    packages = ("huey", "redis", "gevent")

    def __init__(self, store: str, workdir: str) -> None:
        super().__init__(store, workdir)
        self.env = {"BENCH_HUEY_STORE": store}
        if store == "sqlite":
            self.env["BENCH_HUEY_SQLITE"] = os.path.join(workdir, "huey.db")
        os.environ.update(self.env)
        self.jobs = _jobs()
        self.huey = self.jobs.huey

    def reset(self) -> None:
        if self.store == "redis":
            self.huey.storage.conn.flushdb()
        else:
            self.huey.storage.flush_all()

    def enqueue_serial(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> None:
        task = getattr(self.jobs, kind)
        for args in args_list:
            task(*args)

    def remaining(self, total: int) -> int:
        return total - int(self.huey.result_count())

    def worker_command(self, mode: str) -> tuple[list[str], dict[str, str], str]:
        if mode == "io":
            argv = [self.python(), os.path.join(_harness.PEERS_DIR, "huey_gevent_consumer.py"), "huey_jobs.huey",
                    "-k", "greenlet", "-w", str(_harness.IO_SLOTS)]
            desc = f"huey_consumer -k greenlet -w {_harness.IO_SLOTS} (gevent monkey-patched)"
        else:
            argv = [self.script("huey_consumer"), "huey_jobs.huey", "-k", "thread", "-w", str(_harness.slots(mode))]
            desc = f"huey_consumer -k thread -w {_harness.slots(mode)}"
        argv += ["-q", "-n"]
        if self.store == "sqlite":
            desc += " (polls SQLite: delay 0.1 s, backoff to 10 s when idle)"
        return argv, self.env, desc + "; log level WARNING (-q)"

    def server_info(self) -> dict[str, str]:
        if self.store == "redis":
            return {"redis": str(self.huey.storage.conn.info("server")["redis_version"])}
        import sqlite3

        return {"sqlite": sqlite3.sqlite_version}


if __name__ == "__main__":
    _harness.main(HueyAdapter)
