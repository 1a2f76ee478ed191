"""The progress bar of ``offload worker --burst`` on a terminal (click's progress bar, on stderr): jobs done out of
done plus still waiting in the worker's queues, redrawn a few times a second by a thread that only reads the
supervisor's counters and counts the queues. Log lines printed meanwhile first clear the bar's line; the bar
draws itself again below them."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, TextIO

import click

from offload.app import Offload
from offload.jobs import QUEUED, WorkerInfo

REDRAW_SECONDS = 0.2
RECOUNT_SECONDS = 1.0


class BurstProgress:
    def __init__(self, app: Offload, queues: list[str], info: WorkerInfo, stream: TextIO | None = None) -> None:
        self.app = app
        self.queues = queues
        self.info = info
        self.stream = stream if stream is not None else sys.stderr
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="offload-progress", daemon=True)

    def __enter__(self) -> BurstProgress:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)

    def clear_line(self, record: logging.LogRecord) -> bool:
        """A logging filter: wipe the bar's line before a log line is written over it."""
        self.stream.write("\r\x1b[K")
        return True

    def _done(self) -> int:
        return self.info.processed + self.info.failed

    def _waiting(self) -> int:
        try:
            return self.app.store.count(self.queues, [QUEUED])
        except Exception:  # the store is unreachable for now: the supervisor logs it; keep the last figure
            return -1

    def _run(self) -> None:
        start_done = self._done()
        waiting = max(0, self._waiting())
        bar: Any
        with click.progressbar(length=max(1, waiting), label="Running jobs", file=self.stream, show_pos=True,
                               show_eta=True, width=30) as bar:
            counted = time.monotonic()
            while not self.stop.wait(REDRAW_SECONDS):
                if time.monotonic() - counted >= RECOUNT_SECONDS:
                    fresh = self._waiting()
                    waiting = fresh if fresh >= 0 else waiting
                    counted = time.monotonic()
                done = self._done() - start_done
                bar.length = max(1, done + waiting, bar.pos)
                bar.update(max(0, done - bar.pos))
            done = self._done() - start_done
            bar.length = max(1, done)
            bar.update(max(0, done - bar.pos))
