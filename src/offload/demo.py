"""Job functions for ``offload test`` and ``offload demo``, and the demo itself."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import click

from offload.context import current_job

if TYPE_CHECKING:
    from offload.app import Offload


def test_job(*args: Any) -> None:
    """A job that prints its arguments (CKAN's test job)."""
    print(args)


def add(a: float, b: float) -> float:
    return a + b


def count_words(text: str) -> dict[str, int]:
    job = current_job()
    words = text.split()
    counts: dict[str, int] = {}
    for i, word in enumerate(words, 1):
        counts[word] = counts.get(word, 0) + 1
        if job is not None:
            job.set_progress(i, len(words), "words")
    return counts


def divide(a: float, b: float) -> float:
    return a / b


def nap(seconds: float) -> str:
    time.sleep(seconds)
    return f"slept {seconds} s"


def run_demo(app: Offload, count: int, concurrency: int) -> int:
    from offload.worker.supervisor import Supervisor, WorkerOptions

    queue = "demo"
    click.echo(f"Store: {app.store.safe_url} (site {app.site_id!r})")
    jobs = app.enqueue_many([(add, [i, i * i]) for i in range(count)], queue=queue, title="add")
    jobs.append(app.enqueue(count_words, ["the quick brown fox jumps over the lazy dog the end"],
                            title="count words", queue=queue))
    jobs.append(app.enqueue(divide, [1, 0], title="divide by zero", queue=queue, max_attempts=1))
    jobs.append(app.enqueue(nap, [5], title="too slow", queue=queue, timeout=1, max_attempts=1))
    click.echo(f"Enqueued {len(jobs)} jobs on queue {queue!r}; running a worker in burst mode "
               f"with {concurrency} executors...")
    logging.getLogger("offload").setLevel(logging.WARNING)
    started = time.perf_counter()
    Supervisor(app, WorkerOptions(queues=[queue], concurrency=concurrency, burst=True, log_level="WARNING",
                                  grace=5)).run()
    elapsed = time.perf_counter() - started
    states: dict[str, int] = {}
    for job in jobs:
        done = app.get_job(job.id)
        states[done.state] = states.get(done.state, 0) + 1
        if done.title != "add" or done.state != "finished" or int(done.id, 16) % 7 == 0:
            outcome = (done.result_json if done.state == "finished"
                       else f"{(done.error or {}).get('type')}: {(done.error or {}).get('message')}")
            click.echo(f"  {done.id}  {done.state:9} {done.title!r:18} -> {outcome}")
    summary = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    click.echo(f"Done in {elapsed:.2f} s: {summary}. Inspect with: offload list --state all {queue}; "
               f"offload show <id>")
    return 0
