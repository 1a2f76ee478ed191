"""SAQ adapter (runs in bench/.venvs/saq); stores: redis, postgres (SAQ's PostgresQueue, database
``bench_saq``, LISTEN/NOTIFY).

Worker: ``saq saq_jobs.settings --workers 1 --quiet`` with concurrency 2 (drain, latency) or 32 (io, where
the job awaits ``asyncio.sleep(0.01)``). Log level: ERROR (SAQ's CLI default without ``-v``).
Completion: ``queue.count("incomplete")`` (jobs neither finished nor failed).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

import _harness

PG_DATABASE = "bench_saq"
ARG_NAMES = {"noop": (), "sleep": (), "stamp": ("fifo", "sample"), "mark": ("path",), "record": ()}


class SAQAdapter(_harness.Adapter):
    system = "saq"
    stores = ("redis", "postgres")
    packages = ("saq", "redis", "psycopg")

    def __init__(self, store: str, workdir: str) -> None:
        super().__init__(store, workdir)
        if store == "postgres":
            import psycopg

            _harness.ensure_pg_database(psycopg, PG_DATABASE)
            url = _harness.pg_dsn(PG_DATABASE)
        else:
            url = _harness.REDIS_URL
        self.env = {"BENCH_SAQ_URL": url}
        os.environ.update(self.env)
        import saq_jobs

        self.loop = asyncio.new_event_loop()
        self.queue = saq_jobs.make_queue()
        self.loop.run_until_complete(self.queue.connect())

    def reset(self) -> None:
        self.loop.run_until_complete(self._reset())

    async def _reset(self) -> None:
        if self.store == "redis":
            await self.queue.redis.flushdb()
        else:
            from psycopg.sql import SQL

            async with self.queue.pool.connection() as conn:
                await conn.execute(SQL("TRUNCATE {}, {}").format(self.queue.jobs_table, self.queue.stats_table))

    def enqueue_serial(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> None:
        self.loop.run_until_complete(self._enqueue_serial(kind, args_list))

    async def _enqueue_serial(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> None:
        names, enqueue = ARG_NAMES[kind], self.queue.enqueue
        for args in args_list:
            await enqueue(kind, **dict(zip(names, args, strict=True)))

    def fill(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> str:
        self.loop.run_until_complete(self._fill(kind, args_list))
        return "concurrent (asyncio.gather, 100 at a time)"

    async def _fill(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> None:
        names = ARG_NAMES[kind]
        for i in range(0, len(args_list), 100):
            chunk = args_list[i:i + 100]
            await asyncio.gather(*(self.queue.enqueue(kind, **dict(zip(names, a, strict=True))) for a in chunk))

    def remaining(self, total: int) -> int:
        return int(self.loop.run_until_complete(self.queue.count("incomplete")))

    def worker_command(self, mode: str) -> tuple[list[str], dict[str, str], str]:
        concurrency = _harness.IO_SLOTS if mode == "io" else _harness.slots(mode)
        env = dict(self.env, BENCH_SAQ_CONCURRENCY=str(concurrency))
        argv = [self.script("saq"), "saq_jobs.settings", "--workers", "1", "--quiet"]
        body = "; jobs are coroutines, io awaits asyncio.sleep" if mode == "io" else "; jobs are coroutines"
        return argv, env, f"saq --workers 1, concurrency {concurrency}{body}; log level ERROR"

    def server_info(self) -> dict[str, str]:
        if self.store == "redis":
            info = self.loop.run_until_complete(self.queue.redis.info("server"))
            return {"redis": str(info["redis_version"])}
        return {"postgres": self.loop.run_until_complete(self._pg_version())}

    async def _pg_version(self) -> str:
        async with self.queue.pool.connection() as conn:
            row = await (await conn.execute("SHOW server_version")).fetchone()
            return str(row[0])

    def close(self) -> None:
        self.loop.run_until_complete(self.queue.disconnect())
        self.loop.close()


if __name__ == "__main__":
    _harness.main(SAQAdapter)
