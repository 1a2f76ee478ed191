"""``offload info [--watch N]``: queues (jobs by state, latency: how long the oldest waiting job has been due,
workers serving them) and workers, like ``rq info --interval``; and the tables ``offload queues`` and
``offload workers`` print."""

from __future__ import annotations

import datetime as dt
import sys
import time

import click

from offload.app import Offload
from offload.cli.common import app_for, friendly
from offload.cli.table import Cell, colour_on, duration_text, render, state_cell
from offload.jobs import STATES, WorkerInfo


def limit_cell(concurrency: int | None, key_concurrency: int | None) -> str:
    """A queue's limits: ``2``, ``2/key 1`` or ``key 1``; empty without any."""
    parts = ([str(concurrency)] if concurrency else []) + ([f"key {key_concurrency}"] if key_concurrency else [])
    return "/".join(parts)


def queue_table(app: Offload, now: float, workers: list[WorkerInfo], colour: bool) -> list[str]:
    counts = app.store.counts()
    since = app.store.waiting_since(now)
    stopped = set(app.paused())
    limits = app.limits()
    key_limits = app.key_limits()
    names = sorted(set(counts) | set(since) | stopped | set(limits) | set(key_limits))
    if not names:
        return ["There are no queues with jobs."]
    rows: list[list[Cell]] = []
    for name in names:
        serving = sum(1 for w in workers if name in w.queues)
        latency = now - since[name] if name in since else None
        unserved = latency is not None and not serving
        row: list[Cell] = [name]
        row += [state_cell(s, str(counts.get(name, {}).get(s, 0))) if counts.get(name, {}).get(s) else "0"
                for s in STATES]
        row += [duration_text(latency), (str(serving), {"fg": "red" if unserved else None, "bold": unserved}),
                limit_cell(limits.get(name), key_limits.get(name)),
                ("paused", {"fg": "yellow"}) if name in stopped else ""]
        rows.append(row)
    headers = ["queue", *STATES, "latency", "workers", "limit", ""]
    return render(headers, rows, right=range(1, len(headers) - 1), colour=colour)


def worker_table(workers: list[WorkerInfo], now: float, colour: bool) -> list[str]:
    if not workers:
        return ["There are no running workers."]
    rows: list[list[Cell]] = [
        [w.id, w.hostname, str(w.pid), ",".join(w.queues), str(w.concurrency), str(len(w.jobs)), str(w.processed),
         state_cell("failed", str(w.failed)) if w.failed else "0", duration_text(now - w.last_seen) + " ago"]
        for w in workers
    ]
    headers = ["worker", "host", "pid", "queues", "concurrency", "running", "finished", "failed", "heartbeat"]
    return render(headers, rows, right=(2, 4, 5, 6, 7), colour=colour)


def snapshot(app: Offload, colour: bool) -> list[str]:
    now = time.time()
    workers = app.workers()
    stamp = dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%H:%M:%S UTC")

    def title(text: str) -> str:
        return click.style(text, bold=True) if colour else text

    return [title("Queues"), *queue_table(app, now, workers, colour), "", title("Workers"),
            *worker_table(workers, now, colour), "", f"{len(workers)} worker(s) · {stamp}"]


@click.command()
@click.option("--watch", "-w", "interval", type=click.FloatRange(0.1), metavar="N",
              help="show again every N seconds until interrupted")
@click.pass_context
@friendly
def info(ctx: click.Context, interval: float | None) -> None:
    """Queues (jobs by state, latency, workers serving them) and workers; --watch N refreshes every N seconds."""
    app = app_for(ctx)
    colour = colour_on()
    terminal = sys.stdout.isatty()
    try:
        while True:
            lines = snapshot(app, colour)
            if interval is not None and terminal:
                click.clear()
            click.echo("\n".join(lines), color=colour)
            if interval is None:
                return
            if not terminal:
                click.echo("")
            time.sleep(interval)
    except KeyboardInterrupt:
        return
