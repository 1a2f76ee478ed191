"""arq adapter (runs in bench/.venvs/arq), Redis.

Worker: ``arq arq_jobs.WorkerSettings`` with ``max_jobs`` 10 (arq's default; drain, latency) or 32 (io).
Not 2 like the others: each poll starts jobs only until ``max_jobs`` are running, then sleeps ``poll_delay``
(0.5 s, default, kept), so with ``max_jobs=2`` and no-op jobs a backlog drains at a few jobs per second
(measured here: a 500-job drain stalled). All jobs share one thread (coroutines), so 10 is not more CPU
parallelism than the others get. arq polls its queue (a sorted set) every 0.5 s. Log level WARNING.
Completion: ``ZCARD arq:queue`` (arq removes a job id from its queue once the job finished).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import _harness
import arq_jobs
from arq import create_pool
from arq.constants import default_queue_name

#: arq's default max_jobs; see the module docstring for why not 2.
DRAIN_MAX_JOBS = 10


class ArqAdapter(_harness.Adapter):
    system = "arq"
    stores = ("redis",)
    packages = ("arq", "redis")

    def __init__(self, store: str, workdir: str) -> None:
        super().__init__(store, workdir)
        self.loop = asyncio.new_event_loop()
        self.pool = self.loop.run_until_complete(create_pool(arq_jobs.REDIS))

    def reset(self) -> None:
        self.loop.run_until_complete(self.pool.flushdb())

    def enqueue_serial(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> None:
        self.loop.run_until_complete(self._enqueue_serial(kind, args_list))

    async def _enqueue_serial(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> None:
        enqueue = self.pool.enqueue_job
        for args in args_list:
            if await enqueue(kind, *args) is None:
                raise _harness.CellError("arq refused a job (duplicate id)")

    def fill(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> str:
        self.loop.run_until_complete(self._fill(kind, args_list))
        return "concurrent (asyncio.gather, 100 at a time)"

    async def _fill(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> None:
        for i in range(0, len(args_list), 100):
            await asyncio.gather(*(self.pool.enqueue_job(kind, *args) for args in args_list[i:i + 100]))

    def remaining(self, total: int) -> int:
        return int(self.loop.run_until_complete(self.pool.zcard(default_queue_name)))

    def worker_command(self, mode: str) -> tuple[list[str], dict[str, str], str]:
        max_jobs = _harness.IO_SLOTS if mode == "io" else DRAIN_MAX_JOBS
        argv = [self.script("arq"), "arq_jobs.WorkerSettings", "--custom-log-dict", "arq_jobs.LOG_CONFIG"]
        body = "; jobs are coroutines, io awaits asyncio.sleep" if mode == "io" else "; jobs are coroutines"
        return argv, {"BENCH_ARQ_MAX_JOBS": str(max_jobs)}, (
            f"arq worker, max_jobs {max_jobs}, poll_delay 0.5 s (default){body}; log level WARNING"
        )

    def server_info(self) -> dict[str, str]:
        info = self.loop.run_until_complete(self.pool.info("server"))
        return {"redis": str(info["redis_version"])}

    def close(self) -> None:
        self.loop.run_until_complete(self.pool.aclose())
        self.loop.close()


if __name__ == "__main__":
    _harness.main(ArqAdapter)
