"""In-process store for unit tests: ``memory://`` (private) or ``memory://name`` (shared in this process).

Implements the whole contract with plain dicts under one lock; nothing survives the process.
"""

from __future__ import annotations

import builtins
import copy
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from offload.jobs import (
    CANCELED,
    DONE_STATES,
    FAILED,
    FINISHED,
    PENDING_STATES,
    QUEUED,
    SCHEDULED,
    STARTED,
    Job,
    Outcome,
    ScheduleRun,
    WorkerInfo,
)
from offload.stores.base import Store


class _Backend:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.jobs: dict[tuple[str, str], Job] = {}
        self.seq: dict[tuple[str, str], int] = {}
        self.next_seq = 0
        self.workers: dict[tuple[str, str], WorkerInfo] = {}
        self.schedules: dict[tuple[str, str], ScheduleRun] = {}
        self.records: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.paused: dict[tuple[str, str], float] = {}
        self.limits: dict[tuple[str, str], int] = {}
        self.key_limits: dict[tuple[str, str], int] = {}


_shared: dict[str, _Backend] = {}
_shared_lock = threading.Lock()


def _copy(job: Job) -> Job:
    return copy.deepcopy(job)


def abandoned_error(job: Job) -> dict[str, Any]:
    return {
        "type": "LeaseExpired",
        "reason": "abandoned",
        "message": f"worker {job.worker} stopped renewing the lease (killed or lost); attempt {job.attempts}",
        "traceback": None,
    }


def worker_lost_error(job: Job) -> dict[str, Any]:
    return {
        "type": "WorkerLost",
        "reason": "abandoned",
        "message": f"worker {job.worker} was declared dead (no heartbeat, or its process is gone); "
                   f"attempt {job.attempts}",
        "traceback": None,
    }


class MemoryStore(Store):
    scheme = "memory"

    def __init__(self, url: str, site_id: str = "default") -> None:
        super().__init__(url, site_id)
        name = urlsplit(url).netloc or urlsplit(url).path.strip("/")
        if name:
            with _shared_lock:
                self._b = _shared.setdefault(name, _Backend())
        else:
            self._b = _Backend()

    # -- lifecycle
    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def migrate(self) -> int:
        return 1

    def _key(self, job_id: str) -> tuple[str, str]:
        return (self.site_id, job_id)

    def _mine(self) -> list[Job]:
        return [j for (site, _), j in self._b.jobs.items() if site == self.site_id]

    def _order(self, job: Job) -> tuple[float, int]:
        return (job.created_at, self._b.seq[self._key(job.id)])

    # -- producer
    def enqueue_many(self, jobs: Sequence[Job], now: float) -> list[Job]:
        out: list[Job] = []
        with self._b.cond:
            for job in jobs:
                existing = self._b.jobs.get(self._key(job.id))
                if existing is not None and existing.state in PENDING_STATES:
                    dup = _copy(existing)
                    dup.duplicate = True
                    out.append(dup)
                    continue
                if job.unique_key is not None:
                    holder = next(
                        (j for j in self._mine()
                         if j.unique_key == job.unique_key and j.state in PENDING_STATES),
                        None,
                    )
                    if holder is not None:
                        dup = _copy(holder)
                        dup.duplicate = True
                        out.append(dup)
                        continue
                stored = _copy(job)
                stored.duplicate = False
                if stored.state == QUEUED:
                    stored.enqueued_at = now
                self._b.jobs.pop(self._key(job.id), None)
                self._b.jobs[self._key(job.id)] = stored
                self._b.seq[self._key(job.id)] = self._b.next_seq
                self._b.next_seq += 1
                out.append(_copy(stored))
            self._b.cond.notify_all()
        return out

    # -- worker
    def _promote(self, now: float) -> None:
        for job in self._mine():
            if job.state == SCHEDULED and (job.run_at or 0) <= now:
                job.state = QUEUED
                job.enqueued_at = now

    def claim(self, queues: Sequence[str], worker_id: str, lease: float, limit: int, now: float) -> list[Job]:
        claimed: list[Job] = []
        with self._b.cond:
            self._promote(now)
            for queue in queues:
                if len(claimed) >= limit:
                    break
                if (self.site_id, queue) in self._b.paused:
                    continue
                ready = sorted(
                    (j for j in self._mine() if j.queue == queue and j.state == QUEUED),
                    key=lambda j: (j.priority, j.enqueued_at or 0.0, self._b.seq[self._key(j.id)]),
                )
                for job in self._by_key(queue, ready)[: min(limit - len(claimed), self._room(queue))]:
                    job.state = STARTED
                    job.attempts += 1
                    job.lease_token = uuid.uuid4().hex
                    job.lease_until = now + lease
                    job.worker = worker_id
                    job.started_at = now
                    job.ended_at = None
                    claimed.append(_copy(job))
        return claimed

    def _held(self, job_id: str, token: str) -> Job | None:
        job = self._b.jobs.get(self._key(job_id))
        if job is None or job.state != STARTED or job.lease_token != token:
            return None
        return job

    def extend_leases(self, worker_id: str, held: dict[str, str], lease: float, now: float) -> list[str]:
        lost: list[str] = []
        with self._b.cond:
            for job_id, token in held.items():
                job = self._held(job_id, token)
                if job is None:
                    lost.append(job_id)
                else:
                    job.lease_until = now + lease
        return lost

    def settle(self, outcomes: Sequence[Outcome], now: float) -> list[bool]:
        results: list[bool] = []
        with self._b.cond:
            for outcome in outcomes:
                job = self._held(outcome.job_id, outcome.token)
                results.append(job is not None)
                if job is None:
                    continue
                job.lease_token = None
                job.lease_until = None
                if outcome.kind in ("release", "snooze"):
                    job.attempts = max(0, job.attempts - 1)
                    job.started_at = None
                    job.worker = None
                    job.state = QUEUED if outcome.kind == "release" else SCHEDULED
                    if outcome.kind == "snooze":
                        job.run_at = outcome.retry_at if outcome.retry_at is not None else now
                    continue
                job.ended_at = outcome.ended_at or now
                if outcome.kind == "finish":
                    job.state = FINISHED
                    job.result_json = outcome.result_json
                elif outcome.kind == "fail":
                    job.state = FAILED
                    job.error = outcome.error
                    job.errors.append(outcome.error or {})
                else:  # retry
                    job.state = SCHEDULED
                    job.run_at = outcome.retry_at if outcome.retry_at is not None else now
                    job.error = outcome.error
                    job.errors.append(outcome.error or {})
                    if outcome.payload is not None:
                        job.payload = outcome.payload
                if outcome.max_attempts is not None and outcome.kind in ("fail", "retry"):
                    job.max_attempts = outcome.max_attempts
            self._b.cond.notify_all()
        return results

    def requeue_expired(self, now: float) -> list[Job]:
        changed: list[Job] = []
        with self._b.cond:
            for job in self._mine():
                if job.state != STARTED or job.lease_until is None or job.lease_until >= now:
                    continue
                changed.append(self._abandon(job, abandoned_error(job), now))
            if changed:
                self._b.cond.notify_all()
        return changed

    @staticmethod
    def _abandon(job: Job, error: dict[str, Any], now: float) -> Job:
        job.errors.append(error)
        job.error = error
        job.lease_token = None
        job.lease_until = None
        if job.attempts < job.max_attempts:
            job.state = QUEUED  # keeps its enqueued_at: back to its place, not behind the backlog
        else:
            job.state = FAILED
            job.ended_at = now
        return _copy(job)

    def _room(self, queue: str) -> int:
        """How many more jobs of ``queue`` its concurrency limit lets start (a large number without one)."""
        cap = self._b.limits.get((self.site_id, queue))
        if cap is None:
            return 1 << 30
        return max(0, cap - sum(1 for j in self._mine() if j.queue == queue and j.state == STARTED))

    def _by_key(self, queue: str, ready: list[Job]) -> list[Job]:
        """``ready`` without the jobs that the queue's per-key limit does not let start now."""
        cap = self._b.key_limits.get((self.site_id, queue))
        if cap is None:
            return ready
        running: dict[str, int] = {}
        for j in self._mine():
            if j.queue == queue and j.state == STARTED and j.limit_key is not None:
                running[j.limit_key] = running.get(j.limit_key, 0) + 1
        allowed: list[Job] = []
        for job in ready:
            if job.limit_key is not None:
                if running.get(job.limit_key, 0) >= cap:
                    continue
                running[job.limit_key] = running.get(job.limit_key, 0) + 1
            allowed.append(job)
        return allowed

    def _has_work(self, queues: Sequence[str], now: float) -> bool:
        for queue in queues:
            if (self.site_id, queue) in self._b.paused or self._room(queue) <= 0:
                continue
            ready = [j for j in self._mine() if j.queue == queue
                     and (j.state == QUEUED or (j.state == SCHEDULED and (j.run_at or 0) <= now))]
            if self._by_key(queue, ready):
                return True
        return False

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._b.cond:
            while True:
                if self._has_work(queues, time.time()):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._b.cond.wait(min(remaining, 0.05))

    def set_progress(self, job_id: str, progress: dict[str, Any] | None, meta: dict[str, Any] | None) -> bool:
        with self._b.cond:
            job = self._b.jobs.get(self._key(job_id))
            if job is None:
                return False
            if progress is not None:
                job.progress = copy.deepcopy(progress)
            if meta is not None:
                job.meta = copy.deepcopy(meta)
            return True

    # -- management
    def get(self, job_id: str) -> Job | None:
        with self._b.cond:
            job = self._b.jobs.get(self._key(job_id))
            return None if job is None else _copy(job)

    def _select(self, queues: Sequence[str] | None, states: Sequence[str] | None) -> list[Job]:
        return [
            j for j in self._mine()
            if (queues is None or j.queue in queues) and (states is None or j.state in states)
        ]

    def list(
        self,
        queues: Sequence[str] | None = None,
        states: Sequence[str] | None = None,
        limit: int = 100,
        offset: int = 0,
        descending: bool = False,
    ) -> list[Job]:
        with self._b.cond:
            found = sorted(self._select(queues, states), key=self._order, reverse=descending)
            return [_copy(j) for j in found[offset: offset + limit]]

    def count(self, queues: Sequence[str] | None = None, states: Sequence[str] | None = None) -> int:
        with self._b.cond:
            return len(self._select(queues, states))

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        with self._b.cond:
            for job in self._mine():
                per_queue = out.setdefault(job.queue, {})
                per_queue[job.state] = per_queue.get(job.state, 0) + 1
        return out

    def waiting_since(self, now: float) -> dict[str, float]:
        out: dict[str, float] = {}
        with self._b.cond:
            for job in self._mine():
                if job.state == QUEUED:
                    since = job.enqueued_at if job.enqueued_at is not None else job.created_at
                elif job.state == SCHEDULED and job.run_at is not None and job.run_at <= now:
                    since = job.run_at
                else:
                    continue
                out[job.queue] = min(since, out.get(job.queue, since))
        return out

    def cancel(self, job_id: str, now: float) -> Job | None:
        with self._b.cond:
            job = self._b.jobs.get(self._key(job_id))
            if job is None:
                return None
            if job.state in PENDING_STATES:
                job.state = CANCELED
                job.ended_at = now
                job.lease_token = None
                job.lease_until = None
            return _copy(job)

    def retry_now(self, job_id: str, now: float) -> Job | None:
        with self._b.cond:
            job = self._b.jobs.get(self._key(job_id))
            if job is None:
                return None
            if job.state in (FAILED, CANCELED, SCHEDULED):
                if job.state != SCHEDULED:
                    if job.unique_key is not None and any(
                        j.unique_key == job.unique_key and j.state in PENDING_STATES and j.id != job.id
                        for j in self._mine()
                    ):
                        return _copy(job)
                    job.attempts = 0
                job.state = QUEUED
                job.enqueued_at = now
                job.run_at = None
                job.ended_at = None
                self._b.cond.notify_all()
            return _copy(job)

    def to_front(self, job_id: str) -> bool:
        with self._b.cond:
            job = self._b.jobs.get(self._key(job_id))
            if job is None or job.state != QUEUED:
                return False
            ahead = [j.enqueued_at or 0.0 for j in self._mine()
                     if j.queue == job.queue and j.state == QUEUED and j.id != job.id]
            if ahead:
                job.enqueued_at = min(min(ahead) - 1e-6, job.enqueued_at or 0.0)
            job.priority = 0
            return True

    def delete(self, job_id: str) -> bool:
        with self._b.cond:
            self._b.seq.pop(self._key(job_id), None)
            return self._b.jobs.pop(self._key(job_id), None) is not None

    def clear(self, queues: Sequence[str] | None = None) -> int:
        with self._b.cond:
            doomed = [j for j in self._select(queues, (QUEUED, SCHEDULED))]
            for job in doomed:
                del self._b.jobs[self._key(job.id)]
                del self._b.seq[self._key(job.id)]
            return len(doomed)

    def purge(self, ended_before: float, limit: int = 10_000) -> int:
        with self._b.cond:
            doomed = [
                j for j in self._mine()
                if j.state in DONE_STATES and j.ended_at is not None and j.ended_at < ended_before
            ][:limit]
            for job in doomed:
                del self._b.jobs[self._key(job.id)]
                del self._b.seq[self._key(job.id)]
            return len(doomed)

    # -- paused queues
    def pause(self, queue: str, now: float) -> bool:
        with self._b.cond:
            if (self.site_id, queue) in self._b.paused:
                return False
            self._b.paused[(self.site_id, queue)] = now
            return True

    def resume(self, queue: str) -> bool:
        with self._b.cond:
            found = self._b.paused.pop((self.site_id, queue), None) is not None
            self._b.cond.notify_all()
            return found

    def paused(self) -> dict[str, float]:
        with self._b.cond:
            return {q: at for (site, q), at in self._b.paused.items() if site == self.site_id}

    # -- concurrency limits
    def set_limit(self, queue: str, concurrency: int | None) -> None:
        with self._b.cond:
            if concurrency is None:
                self._b.limits.pop((self.site_id, queue), None)
            else:
                self._b.limits[(self.site_id, queue)] = concurrency
            self._b.cond.notify_all()

    def limits(self) -> dict[str, int]:
        with self._b.cond:
            return {q: n for (site, q), n in self._b.limits.items() if site == self.site_id}

    def set_key_limit(self, queue: str, concurrency: int | None) -> None:
        with self._b.cond:
            if concurrency is None:
                self._b.key_limits.pop((self.site_id, queue), None)
            else:
                self._b.key_limits[(self.site_id, queue)] = concurrency
            self._b.cond.notify_all()

    def key_limits(self) -> dict[str, int]:
        with self._b.cond:
            return {q: n for (site, q), n in self._b.key_limits.items() if site == self.site_id}

    # -- workers
    def register_worker(self, info: WorkerInfo) -> None:
        with self._b.cond:
            self._b.workers[(self.site_id, info.id)] = copy.deepcopy(info)

    def unregister_worker(self, worker_id: str) -> None:
        with self._b.cond:
            self._b.workers.pop((self.site_id, worker_id), None)

    def list_workers(self, seen_after: float) -> builtins.list[WorkerInfo]:
        with self._b.cond:
            for key, info in list(self._b.workers.items()):
                if key[0] == self.site_id and info.last_seen <= seen_after:
                    del self._b.workers[key]
            return sorted(
                (copy.deepcopy(w) for (site, _), w in self._b.workers.items() if site == self.site_id),
                key=lambda w: w.id,
            )

    def reap_dead_workers(
        self, worker_id: str, now: float, seen_before: float, dead: Sequence[str] = ()
    ) -> builtins.list[Job]:
        with self._b.cond:
            me = self._b.workers.get((self.site_id, worker_id))
            if me is not None:
                me.last_seen = now
            gone = {w for w in dead if w != worker_id}
            gone.update(wid for (site, wid), info in self._b.workers.items()
                        if site == self.site_id and wid != worker_id and info.last_seen < seen_before)
            if not gone:
                return []
            for wid in gone:
                self._b.workers.pop((self.site_id, wid), None)
            changed = [self._abandon(job, worker_lost_error(job), now) for job in self._mine()
                       if job.state == STARTED and job.worker in gone]
            if changed:
                self._b.cond.notify_all()
            return changed

    # -- schedules
    def enqueue_periodic(self, name: str, slot: float, job: Job, now: float) -> bool:
        with self._b.cond:
            run = self._b.schedules.get((self.site_id, name))
            if run is not None and run.last_slot >= slot:
                return False
            stored = self.enqueue_many([job], now)[0]
            self._b.schedules[(self.site_id, name)] = ScheduleRun(name, slot, stored.id)
            return True

    def schedule_runs(self) -> dict[str, ScheduleRun]:
        with self._b.cond:
            return {
                name: copy.copy(run) for (site, name), run in self._b.schedules.items() if site == self.site_id
            }

    # -- records
    def put_record(self, kind: str, key: str, data: dict[str, Any]) -> None:
        with self._b.cond:
            self._b.records[(self.site_id, kind, key)] = copy.deepcopy(data)

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        with self._b.cond:
            data = self._b.records.get((self.site_id, kind, key))
            return None if data is None else copy.deepcopy(data)

    def list_records(self, kind: str) -> builtins.list[tuple[str, dict[str, Any]]]:
        with self._b.cond:
            return sorted(
                (key, copy.deepcopy(data))
                for (site, k, key), data in self._b.records.items()
                if site == self.site_id and k == kind
            )

    def delete_record(self, kind: str, key: str) -> bool:
        with self._b.cond:
            return self._b.records.pop((self.site_id, kind, key), None) is not None
