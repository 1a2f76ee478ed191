"""Dramatiq broker and actors for the benchmark (Redis broker, database 15, queue ``default``).
Default middleware; retries off so a failing job shows up instead of looping."""

import os

import _jobbodies
import dramatiq
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="default", actor_name="noop", max_retries=0)
def noop() -> None:
    _jobbodies.noop()


@dramatiq.actor(queue_name="default", actor_name="sleep", max_retries=0)
def sleep() -> None:
    _jobbodies.sleep()


@dramatiq.actor(queue_name="default", actor_name="stamp", max_retries=0)
def stamp(fifo: str, sample: str) -> None:
    _jobbodies.stamp(fifo, sample)


@dramatiq.actor(queue_name="default", actor_name="mark", max_retries=0)
def mark(path: str) -> None:
    _jobbodies.mark(path)


@dramatiq.actor(queue_name="default", actor_name="record", max_retries=0)
def record() -> None:
    _jobbodies.record()
