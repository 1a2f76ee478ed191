"""SAQ functions and worker settings for the benchmark. ``BENCH_SAQ_URL`` picks the queue
(``redis://...`` or ``postgresql://...``), ``BENCH_SAQ_CONCURRENCY`` the worker's concurrency.
Functions are coroutines (SAQ's native form); ``sleep`` awaits ``asyncio.sleep`` because a blocking sleep
would stall the event loop that runs every job of the worker."""

import asyncio
import os
from typing import Any

import _jobbodies
from saq import Queue


async def noop(ctx: Any) -> None:
    _jobbodies.noop()


async def sleep(ctx: Any) -> None:
    await asyncio.sleep(0.01)


async def stamp(ctx: Any, *, fifo: str, sample: str) -> None:
    _jobbodies.stamp(fifo, sample)


async def mark(ctx: Any, *, path: str) -> None:
    _jobbodies.mark(path)


async def record(ctx: Any) -> None:
    _jobbodies.record()


def make_queue() -> Queue:
    return Queue.from_url(os.environ["BENCH_SAQ_URL"], name="default")


def settings() -> dict[str, Any]:
    return {
        "queue": make_queue(),
        "functions": [noop, sleep, stamp, mark, record],
        "concurrency": int(os.environ.get("BENCH_SAQ_CONCURRENCY", "2")),
    }
