"""Celery adapter (runs in bench/.venvs/celery), Redis broker.

drain/latency: ``celery worker -P prefork -c 2``; io: ``-P threads -c 32``. Gossip, mingle and heartbeat
are off (they only matter with several workers and mingle adds a start-up wait); log level WARNING.
Completion: ``LLEN default`` (waiting) + ``HLEN unacked`` (delivered, not yet acknowledged; with
acks_late a task is acknowledged after it ran).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import _harness
import celery_jobs
import redis

TASKS = {"noop": celery_jobs.noop, "sleep": celery_jobs.sleep, "stamp": celery_jobs.stamp, "mark": celery_jobs.mark,
         "record": celery_jobs.record}


class CeleryAdapter(_harness.Adapter):
    system = "celery"
    stores = ("redis",)
    packages = ("celery", "kombu", "redis")

    def __init__(self, store: str, workdir: str) -> None:
        super().__init__(store, workdir)
        self.conn = redis.Redis.from_url(_harness.REDIS_URL)

    def reset(self) -> None:
        self.conn.flushdb()

    def enqueue_serial(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> None:
        delay = TASKS[kind].delay
        for args in args_list:
            delay(*args)

    def remaining(self, total: int) -> int:
        pipe = self.conn.pipeline(transaction=False)
        pipe.llen("default")
        pipe.hlen("unacked")
        waiting, unacked = pipe.execute()
        return int(waiting) + int(unacked)

    def worker_command(self, mode: str) -> tuple[list[str], dict[str, str], str]:
        if mode == "io":
            pool = ["-P", "threads", "-c", str(_harness.IO_SLOTS)]
            desc = f"celery worker -P threads -c {_harness.IO_SLOTS}"
        else:
            pool = ["-P", "prefork", "-c", str(_harness.slots(mode))]
            desc = f"celery worker -P prefork -c {_harness.slots(mode)}"
        argv = [
            self.script("celery"), "-A", "celery_jobs", "worker", "-Q", "default", "-l", "WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat", *pool,
        ]
        return argv, {}, desc + " (acks_late, prefetch multiplier 4); log level WARNING"

    def server_info(self) -> dict[str, str]:
        return {"redis": str(self.conn.info("server")["redis_version"])}

    def close(self) -> None:
        celery_jobs.app.close()


if __name__ == "__main__":
    _harness.main(CeleryAdapter)
