"""Prometheus metrics (text exposition format 0.0.4, written by hand) and the recent-throughput figures the
dashboard's chart shows. Both are computed from the store on each request, so every API process reports
the same numbers whichever one Prometheus scrapes.

Bounds: the recent figures come from one ``store.list`` of at most ``RECENT_SCAN_LIMIT`` finished and failed
jobs, newest-created first, filtered by ``ended_at`` within the window. When the store holds more done jobs
than that, jobs created earlier but ended inside the window are left out, and ``truncated`` (the metric
``offload_recent_scan_truncated``, a note under the chart) says so. Each scrape or chart refresh therefore
reads at most ``RECENT_SCAN_LIMIT`` job records.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from offload import history
from offload.app import Offload
from offload.jobs import FAILED, FINISHED, STATES, Job

RECENT_WINDOW = 3600.0
RECENT_SCAN_LIMIT = 5000
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 180.0, 600.0, 1800.0, math.inf)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STALE_WORKER_AFTER = 30.0


@dataclass
class RecentJobs:
    """Finished and failed jobs that ended in the last ``window`` seconds (see the module docstring)."""

    jobs: list[Job]
    truncated: bool
    now: float
    window: float


def recent_done_jobs(offload: Offload, now: float, window: float = RECENT_WINDOW,
                     limit: int = RECENT_SCAN_LIMIT) -> RecentJobs:
    scanned = offload.store.list(None, [FINISHED, FAILED], limit=limit, offset=0, descending=True)
    since = now - window
    jobs = [job for job in scanned if job.ended_at is not None and job.ended_at >= since]
    return RecentJobs(jobs, truncated=len(scanned) >= limit, now=now, window=window)


def throughput(recent: RecentJobs, bucket: float = 60.0) -> list[dict[str, float]]:
    """Finished and failed jobs per ``bucket`` seconds over the window, oldest bucket first:
    ``[{"t": bucket start (epoch seconds), "finished": n, "failed": n}, ...]``."""
    count = int(recent.window // bucket)
    end = math.floor(recent.now / bucket) * bucket + bucket
    start = end - count * bucket
    rows = [{"t": start + i * bucket, "finished": 0.0, "failed": 0.0} for i in range(count)]
    for job in recent.jobs:
        assert job.ended_at is not None
        index = int((job.ended_at - start) // bucket)
        if 0 <= index < count:
            rows[index][job.state] += 1
    return rows


#: Chart ranges: name -> (history resolution, seconds covered, seconds per bar, label of the left end)
RANGES = {"hour": ("minute", 3600, 60, "60 min ago"), "day": ("hour", 86400, 3600, "24 h ago"),
          "month": ("hour", 30 * 86400, 86400, "30 days ago")}


def history_chart(offload: Offload, queues: list[str], range_name: str, now: float) -> list[dict[str, float]]:
    """Finished and failed jobs per bar over ``range_name`` from the metrics history, summed over ``queues``:
    ``[{"t": bar start, "finished": n, "failed": n, "p95": run time, "wait": longest wait}, ...]``, oldest first
    (``p95`` and ``wait`` only where there were runs)."""
    resolution, span, step, _ = RANGES[range_name]
    end = math.floor(now / step) * step + step
    start = end - span
    count = int(span // step)
    merged = [history.Bucket() for _ in range(count)]
    for queue in queues:
        for bucket_start, bucket in history.series(offload.store, queue, resolution, start, now):
            index = int((bucket_start - start) // step)
            if 0 <= index < count:
                merged[index].merge(bucket.to_dict())
    rows: list[dict[str, float]] = []
    for i, bucket in enumerate(merged):
        row = {"t": float(start + i * step), "finished": float(bucket.finished), "failed": float(bucket.failed)}
        p95 = bucket.percentile(0.95)
        if p95 is not None:
            row["p95"] = p95 if math.isfinite(p95) else 3600.0
        if bucket.waits:
            row["wait"] = bucket.wait_max
        rows.append(row)
    return rows


def last_hour(offload: Offload, queue: str, now: float) -> history.Bucket:
    """The metrics history of ``queue`` over the last hour, in one bucket."""
    total = history.Bucket()
    for _, bucket in history.series(offload.store, queue, "minute", now - 3600, now):
        total.merge(bucket.to_dict())
    return total


# -- exposition --------------------------------------------------------------------------------------------------
def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items()) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class Exposition:
    """Builds the text: each metric family once, with its HELP and TYPE lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[str, dict[str, str], float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for suffix, labels, value in samples:
            self.lines.append(f"{name}{suffix}{_labels(**labels)} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _duration_samples(jobs: list[Job]) -> list[tuple[str, dict[str, str], float]]:
    by_queue: dict[str, list[float]] = defaultdict(list)
    for job in jobs:
        if job.duration is not None:
            by_queue[job.queue].append(job.duration)
    samples: list[tuple[str, dict[str, str], float]] = []
    for queue in sorted(by_queue):
        durations = by_queue[queue]
        for bound in DURATION_BUCKETS:
            samples.append(("_bucket", {"queue": queue, "le": _number(bound)},
                            sum(1 for d in durations if d <= bound)))
        samples.append(("_sum", {"queue": queue}, sum(durations)))
        samples.append(("_count", {"queue": queue}, len(durations)))
    return samples


def _history_samples(offload: Offload, queues: list[str], now: float) -> list[tuple[str, dict[str, str], float]]:
    samples: list[tuple[str, dict[str, str], float]] = []
    for queue in queues:
        bucket = last_hour(offload, queue, now)
        cumulative = 0
        for bound, n in zip((*history.RUNTIME_BOUNDS, math.inf), bucket.runtimes, strict=True):
            cumulative += n
            samples.append(("_bucket", {"queue": queue, "le": _number(bound)}, cumulative))
        samples.append(("_sum", {"queue": queue}, bucket.runtime_sum))
        samples.append(("_count", {"queue": queue}, cumulative))
    return samples


def render(offload: Offload, now: float) -> str:
    """The metrics text for this site."""
    out = Exposition()
    counts = offload.store.counts()
    out.family("offload_jobs", "gauge", "Jobs in the store by queue and state.",
               (("", {"queue": queue, "state": state}, counts[queue].get(state, 0))
                for queue in sorted(counts) for state in STATES))
    paused = offload.paused()
    out.family("offload_queue_paused", "gauge", "1 for each paused queue (workers take none of its jobs).",
               (("", {"queue": queue}, 1) for queue in sorted(paused)))
    recent = recent_done_jobs(offload, now)
    out.family("offload_job_duration_seconds", "histogram",
               "Run time (started to ended) of the jobs that finished or failed in the last hour, by queue.",
               _duration_samples(recent.jobs))
    ended: dict[tuple[str, str], int] = defaultdict(int)
    for job in recent.jobs:
        ended[(job.queue, job.state)] += 1
    queues = sorted({queue for queue, _ in ended})
    out.family("offload_jobs_ended_last_hour", "gauge",
               "Jobs that finished or failed (failures) in the last hour, by queue and state.",
               (("", {"queue": queue, "state": state}, ended[(queue, state)])
                for queue in queues for state in (FINISHED, FAILED)))
    out.family("offload_recent_scan_truncated", "gauge",
               "1 when the last-hour figures were computed from a truncated scan of the store.",
               [("", {}, 1 if recent.truncated else 0)])
    since = offload.store.waiting_since(now)
    out.family("offload_queue_latency_seconds", "gauge",
               "How long the oldest waiting job of each queue has been due (0: nothing waits).",
               (("", {"queue": queue}, max(0.0, now - since[queue]) if queue in since else 0)
                for queue in sorted(set(counts) | set(since))))
    out.family("offload_queue_run_seconds", "histogram",
               "Run time of the attempts that ended in the last hour, by queue (metrics history).",
               _history_samples(offload, sorted(counts), now))
    workers = offload.workers(stale_after=STALE_WORKER_AFTER)
    out.family("offload_workers_alive", "gauge", "Workers that sent a heartbeat in the last 30 seconds.",
               [("", {}, len(workers))])
    out.family("offload_worker_running_jobs", "gauge", "Jobs each live worker is running now.",
               (("", {"worker": w.id}, len(w.jobs)) for w in workers))
    out.family("offload_worker_jobs_processed_total", "counter",
               "Jobs each live worker has finished since it started.",
               (("", {"worker": w.id}, w.processed) for w in workers))
    out.family("offload_worker_jobs_failed_total", "counter",
               "Jobs that failed for good on each live worker since it started.",
               (("", {"worker": w.id}, w.failed) for w in workers))
    return out.text()
