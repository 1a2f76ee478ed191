"""arq functions and worker settings for the benchmark (Redis database 15). ``BENCH_ARQ_MAX_JOBS`` sets the
worker's concurrency; everything else is arq's default (poll_delay 0.5 s, keep_result 3600 s).
Functions are coroutines; ``sleep`` awaits ``asyncio.sleep`` (a blocking sleep would stall the loop)."""

import asyncio
import os
from typing import Any

import _jobbodies
from arq.connections import RedisSettings

REDIS = RedisSettings.from_dsn(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))


async def noop(ctx: Any) -> None:
    _jobbodies.noop()


async def sleep(ctx: Any) -> None:
    await asyncio.sleep(0.01)


async def stamp(ctx: Any, fifo: str, sample: str) -> None:
    _jobbodies.stamp(fifo, sample)


async def mark(ctx: Any, path: str) -> None:
    _jobbodies.mark(path)


async def record(ctx: Any) -> None:
    _jobbodies.record()


class WorkerSettings:
    functions = (noop, sleep, stamp, mark, record)
    redis_settings = REDIS
    max_jobs = int(os.environ.get("BENCH_ARQ_MAX_JOBS", "2"))


# arq's own logging at WARNING (its default is INFO with one line per job start and end).
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "level": "WARNING"}},
    "loggers": {"arq": {"handlers": ["stderr"], "level": "WARNING"}},
}
