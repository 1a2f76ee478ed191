"""Metrics history kept in the store, per queue, at two fixed resolutions: a bucket per minute for a day and a
bucket per hour for 30 days. Each bucket holds jobs finished and failed, a histogram of run times (so percentiles
can be read back) and the wait before each run (how long it waited once due: the latency its jobs saw).

It lives in the store's records, so every engine keeps it with no schema of its own. Each worker writes its own
record per queue and bucket (key ``<bucket>.<worker id>``: one writer per record, no lost updates) with the totals
it has counted there; readers sum the records of a bucket, so what a worker wrote survives its restart. Records
are grouped by hour (minute buckets) or by day (hour buckets) in the record kind, so reading the last hour reads
two small kinds. Workers delete records past the window (a day of minutes, 30 days of hours) for the queues they
serve, so the history stays bounded: at most a day of minute records and 30 days of hour records per worker that
served a queue in that time.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

from offload.stores.base import Store

MINUTE, HOUR, DAY = 60, 3600, 86400
#: resolution -> (bucket seconds, seconds of one record kind, seconds kept)
RESOLUTIONS = {"minute": (MINUTE, HOUR, DAY), "hour": (HOUR, DAY, 30 * DAY)}
#: Upper bounds (seconds) of the run-time histogram's buckets; the last bucket is everything above.
RUNTIME_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
KIND_PREFIX = "offload.metrics."
#: How far behind the window pruning looks for stale kinds (workers down longer leave older records behind until
#: a worker that serves the queue has run a day: see ``prune``).
PRUNE_LOOKBACK = 2


@dataclass
class Bucket:
    finished: int = 0
    failed: int = 0
    runtimes: list[int] = field(default_factory=lambda: [0] * (len(RUNTIME_BOUNDS) + 1))
    runtime_sum: float = 0.0
    waits: int = 0
    wait_sum: float = 0.0
    wait_max: float = 0.0

    def add(self, ok: bool, runtime: float | None, wait: float | None) -> None:
        if ok:
            self.finished += 1
        else:
            self.failed += 1
        if runtime is not None and math.isfinite(runtime) and runtime >= 0:
            self.runtimes[bisect.bisect_left(RUNTIME_BOUNDS, runtime)] += 1
            self.runtime_sum += runtime
        if wait is not None and math.isfinite(wait):
            wait = max(0.0, wait)
            self.waits += 1
            self.wait_sum += wait
            self.wait_max = max(self.wait_max, wait)

    def merge(self, data: dict[str, Any]) -> None:
        self.finished += int(data.get("finished", 0))
        self.failed += int(data.get("failed", 0))
        for i, n in enumerate(data.get("runtimes", [])[: len(self.runtimes)]):
            self.runtimes[i] += int(n)
        self.runtime_sum += float(data.get("runtime_sum", 0.0))
        self.waits += int(data.get("waits", 0))
        self.wait_sum += float(data.get("wait_sum", 0.0))
        self.wait_max = max(self.wait_max, float(data.get("wait_max", 0.0)))

    def to_dict(self) -> dict[str, Any]:
        return {"finished": self.finished, "failed": self.failed, "runtimes": self.runtimes,
                "runtime_sum": self.runtime_sum, "waits": self.waits, "wait_sum": self.wait_sum,
                "wait_max": self.wait_max}

    def percentile(self, q: float) -> float | None:
        """The run time below which a fraction ``q`` of runs fell (the upper bound of its histogram bucket)."""
        total = sum(self.runtimes)
        if not total:
            return None
        rank = q * total
        seen = 0
        for i, n in enumerate(self.runtimes):
            seen += n
            if seen >= rank and n:
                return RUNTIME_BOUNDS[i] if i < len(RUNTIME_BOUNDS) else math.inf
        return math.inf


def kind(queue: str, resolution: str, bucket: float) -> str:
    """The record kind holding ``queue``'s buckets of ``resolution`` around ``bucket`` (an hour or a day of them)."""
    group = RESOLUTIONS[resolution][1]
    return f"{KIND_PREFIX}{resolution}.{queue}.{int(bucket // group * group)}"


class Recorder:
    """What one worker counts, flushed to its own records (``flush``, called every few seconds and at exit)."""

    def __init__(self, store: Store, worker_id: str) -> None:
        self.store = store
        self.worker_id = worker_id
        self.open: dict[tuple[str, str, int], Bucket] = {}
        self.dirty: set[tuple[str, str, int]] = set()

    def record(self, queue: str, ended: float, ok: bool, runtime: float | None, wait: float | None) -> None:
        for resolution, (size, _, _) in RESOLUTIONS.items():
            key = (resolution, queue, int(ended // size * size))
            self.open.setdefault(key, Bucket()).add(ok, runtime, wait)
            self.dirty.add(key)

    def flush(self, now: float) -> None:
        """Write the buckets counted into since the last flush; forget closed ones once written."""
        for key in sorted(self.dirty):
            resolution, queue, bucket = key
            self.store.put_record(kind(queue, resolution, bucket), f"{bucket:012d}.{self.worker_id}",
                                  self.open[key].to_dict())
        self.dirty.clear()
        for key in [k for k in self.open if k[2] + RESOLUTIONS[k[0]][0] < now - MINUTE]:
            del self.open[key]


def prune(store: Store, queues: list[str], now: float) -> int:
    """Delete the records of ``queues`` past each resolution's window; returns how many."""
    deleted = 0
    for resolution, (size, group, keep) in RESOLUTIONS.items():
        cutoff = now - keep
        first = int(cutoff // group * group)
        for queue in queues:
            for start in range(first, first - PRUNE_LOOKBACK * keep - group, -group):
                for key, _ in store.list_records(kind(queue, resolution, start)):
                    if int(key.split(".", 1)[0]) + size <= cutoff:
                        deleted += int(store.delete_record(kind(queue, resolution, start), key))
    return deleted


def series(store: Store, queue: str, resolution: str, since: float, until: float) -> list[tuple[int, Bucket]]:
    """The buckets of ``queue`` from ``since`` to ``until`` (every one, empty ones included), oldest first."""
    size, group, _ = RESOLUTIONS[resolution]
    first, last = int(since // size * size), int(until // size * size)
    buckets = {start: Bucket() for start in range(first, last + 1, size)}
    for group_start in range(int(first // group * group), last + 1, group):
        for key, data in store.list_records(kind(queue, resolution, group_start)):
            start = int(key.split(".", 1)[0])
            if start in buckets:
                buckets[start].merge(data)
    return sorted(buckets.items())
