"""procrastinate app and tasks for the benchmark (PostgreSQL database ``bench_procrastinate``, queue
``default``). Tasks are coroutines, procrastinate's native form (sync tasks would each go through a thread);
``sleep`` awaits ``asyncio.sleep``."""

import asyncio
import os

import _jobbodies
import procrastinate

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=os.environ["BENCH_PROCRASTINATE_DSN"]))


@app.task(name="noop", queue="default")
async def noop() -> None:
    _jobbodies.noop()


@app.task(name="sleep", queue="default")
async def sleep() -> None:
    await asyncio.sleep(0.01)


@app.task(name="stamp", queue="default")
async def stamp(fifo: str, sample: str) -> None:
    _jobbodies.stamp(fifo, sample)


@app.task(name="mark", queue="default")
async def mark(path: str) -> None:
    _jobbodies.mark(path)


@app.task(name="record", queue="default")
async def record() -> None:
    _jobbodies.record()
