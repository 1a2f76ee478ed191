"""Paused queues with real workers on every engine: a paused queue's jobs wait while the worker serves its other
queues, and run once the queue is resumed; a worker started while a queue is paused takes none of its jobs."""

from __future__ import annotations

import pytest

from offload import paused
from tests import jobfuncs
from tests.waiting import wait_until
from tests.worker.conftest import Workers

ALL_ENGINES = ["sqlite", "redis", "postgresql"]


@pytest.mark.parametrize("workers", ALL_ENGINES, indirect=True)
def test_pause_and_resume_a_queue(workers: Workers) -> None:
    store = workers.app.store
    paused.pause(store, "p")
    early = workers.app.enqueue(jobfuncs.noop, queue="p")
    proc = workers.start("p", "q", "--concurrency", "1")
    marker = workers.app.enqueue(jobfuncs.noop, queue="q")
    workers.wait_state(marker.id, "finished")
    assert workers.job(early.id).state == "queued", "paused before the worker started"

    paused.resume(store, "p")
    workers.wait_state(early.id, "finished")
    wait_until(lambda: 'queue "p" is resumed' in workers.log(proc))

    paused.pause(store, "p")
    wait_until(lambda: workers.log(proc).count('queue "p" is paused') == 2)
    held = workers.app.enqueue(jobfuncs.noop, queue="p")
    marker = workers.app.enqueue(jobfuncs.noop, queue="q")
    workers.wait_state(marker.id, "finished")
    assert workers.job(held.id).state == "queued", "paused while the worker ran"
    assert paused.paused(store) == {"p"}

    assert paused.resume(store, "p") and not paused.resume(store, "p")
    workers.wait_state(held.id, "finished")
