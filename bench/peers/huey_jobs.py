"""Huey instance and tasks for the benchmark. The store comes from the environment:
``BENCH_HUEY_STORE=redis`` (RedisHuey, database 15, blocking dequeue) or ``sqlite`` (SqliteHuey on
``BENCH_HUEY_SQLITE``). Tasks return True so Huey records one result per task: its result store is the
only per-task completion record Huey keeps, and the driver counts it."""

import os

import _jobbodies
from huey import RedisHuey, SqliteHuey

if os.environ.get("BENCH_HUEY_STORE", "redis") == "sqlite":
    huey = SqliteHuey("bench", filename=os.environ["BENCH_HUEY_SQLITE"])
else:
    huey = RedisHuey("bench", url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))


@huey.task(name="noop")
def noop() -> bool:
    _jobbodies.noop()
    return True


@huey.task(name="sleep")
def sleep() -> bool:
    _jobbodies.sleep()
    return True


@huey.task(name="stamp")
def stamp(fifo: str, sample: str) -> bool:
    _jobbodies.stamp(fifo, sample)
    return True


@huey.task(name="mark")
def mark(path: str) -> bool:
    _jobbodies.mark(path)
    return True


@huey.task(name="record")
def record() -> bool:
    _jobbodies.record()
    return True
