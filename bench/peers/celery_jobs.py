"""Celery app and tasks for the benchmark (Redis broker, database 15, queue ``default``).

``task_acks_late``: a message is acknowledged after its task ran, so the broker's ``unacked`` hash tells
which tasks are still running (the driver's completion check) and a crashed worker's tasks come back:
the delivery guarantee closest to the other systems'. No result backend (results are not needed).
"""

import os

import _jobbodies
from celery import Celery

app = Celery("bench", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
app.conf.update(
    task_default_queue="default",
    task_acks_late=True,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=True,
    worker_redirect_stdouts=False,
)


@app.task(name="noop")
def noop() -> None:
    _jobbodies.noop()


@app.task(name="sleep")
def sleep() -> None:
    _jobbodies.sleep()


@app.task(name="stamp")
def stamp(fifo: str, sample: str) -> None:
    _jobbodies.stamp(fifo, sample)


@app.task(name="mark")
def mark(path: str) -> None:
    _jobbodies.mark(path)


@app.task(name="record")
def record() -> None:
    _jobbodies.record()
