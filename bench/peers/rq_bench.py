"""RQ adapter (runs in bench/.venvs/rq). Two variants on Redis:

* ``rq``: the stock ``rq worker`` (forks a work horse per job): CKAN's engine as it ships. The baseline.
* ``rq-simple``: ``rq worker -w rq.worker.SimpleWorker`` (runs jobs in the worker process, no fork).

RQ has no in-process concurrency: one worker runs one job at a time in every workload.
Completion: ``ZCARD`` of the queue's FinishedJobRegistry (RQ records every finished job there).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import _harness
import redis
import rq_jobs
from rq import Queue

FUNCS = {"noop": rq_jobs.noop, "sleep": rq_jobs.sleep, "stamp": rq_jobs.stamp, "mark": rq_jobs.mark,
         "record": rq_jobs.record}


class RQAdapter(_harness.Adapter):
    system = "rq"
    stores = ("redis",)
    packages = ("rq", "redis")
    worker_class: str | None = None

    def __init__(self, store: str, workdir: str) -> None:
        super().__init__(store, workdir)
        self.conn = redis.Redis.from_url(_harness.REDIS_URL)
        self.queue = Queue("default", connection=self.conn)
        self.finished_key = self.queue.finished_job_registry.key

    def reset(self) -> None:
        self.conn.flushdb()

    def enqueue_serial(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> None:
        func, enqueue = FUNCS[kind], self.queue.enqueue
        for args in args_list:
            enqueue(func, *args)

    def enqueue_bulk(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> None:
        func = FUNCS[kind]
        self.queue.enqueue_many([Queue.prepare_data(func, args) for args in args_list])

    def remaining(self, total: int) -> int:
        return total - int(self.conn.zcard(self.finished_key))

    def worker_command(self, mode: str) -> tuple[list[str], dict[str, str], str]:
        argv = [self.script("rq"), "worker", "--url", _harness.REDIS_URL, "--logging_level", "WARNING"]
        if self.worker_class:
            argv += ["-w", self.worker_class]
            desc = "rq worker -w SimpleWorker: one job at a time, in process"
        else:
            desc = "rq worker (stock): one job at a time, forks a work horse per job"
        return [*argv, "default"], {}, desc + "; log level WARNING"

    def server_info(self) -> dict[str, str]:
        return {"redis": str(self.conn.info("server")["redis_version"])}


class RQSimpleAdapter(RQAdapter):
    system = "rq-simple"
    worker_class = "rq.worker.SimpleWorker"


if __name__ == "__main__":
    _harness.main(RQAdapter)
