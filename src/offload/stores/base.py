"""The Store contract: job-level verbs that every storage engine implements atomically.

A store instance is bound to one site id. Queue names cross this interface unprefixed (``"default"``);
each engine stores them as ``"<site_id>:<name>"`` and never returns another site's jobs, workers,
schedules or records. Every time argument (``now``, ``lease``) comes from the caller's clock, so all engines
agree and tests can move time.

State machine (what each verb may do):

    enqueue        -> queued (run_at absent or due) | scheduled (run_at in the future)
    claim          scheduled (due) -> queued;  queued -> started (attempts + 1, new lease token)
    settle finish  started -> finished           settle fail   started -> failed
    settle retry   started -> scheduled (run_at = retry_at, error appended to errors; the outcome's payload and
                   max_attempts, when given, replace the job's: a retry asked for new arguments or budget)
    settle fail    also records the outcome's max_attempts when given
    settle release started -> queued (attempt given back, back at the head of its queue)
    settle snooze  started -> scheduled (run_at = retry_at, attempt given back, started_at and worker cleared,
                   no error recorded)
    requeue_expired started (lease over) -> queued (at its old place, ahead of later jobs), or failed (reason
                   "abandoned") once attempts are spent
    waiting_since  (reads only) per queue, since when its oldest waiting job has been due
    reap_dead_workers  started (its worker declared dead) -> as requeue_expired, error type "WorkerLost",
                   without waiting for the lease
    cancel         scheduled | queued | started -> canceled (a started job's lease is revoked)
    retry_now      failed | canceled | scheduled -> queued (attempts reset to 0 for failed/canceled)
    to_front       queued -> queued, at the head of its queue (priority 0, and its enqueued_at, its place, just
                   before that of every other queued job of the queue)

Order within a queue: ``priority`` (0 first, 9 last), then ``enqueued_at``, then insertion order. A released or
requeued job keeps its priority and its place.

Paused queues: ``pause`` marks a queue of the site paused in the store; ``claim`` takes nothing from it (jobs
can still be enqueued, cancelled and so on) and ``wait_for_work`` does not count its work, until ``resume``, which
wakes idle workers if it holds work. Running jobs are not touched.

Concurrency limits: ``set_limit`` stores a queue's limit (None removes it). ``claim`` starts a job of a limited
queue only while fewer than ``concurrency`` of the queue's jobs are ``started`` (across every worker of the
site), so a limit is released by whatever ends the started state: settle, requeue_expired, reap_dead_workers,
cancel, delete. ``set_key_limit`` likewise limits the started jobs of a queue that share one ``limit_key``: the
claim passes over a queued job whose key is at its limit (it keeps its place) and takes the next one.
``wait_for_work`` does not count the work of a queue at its limit, and a job of a limited queue
leaving ``started`` wakes idle workers when the queue holds work.

Fencing: settle and extend_leases act only on a started job whose ``lease_token`` matches; anything else
is a late or foreign result and is rejected (returns False / reported as lost).

Uniqueness: at most one pending (scheduled, queued or started) job per job id and per ``unique_key`` on a
site. ``enqueue`` of a duplicate adds nothing and returns the existing job with ``duplicate=True``. A job
id whose previous job is done (finished, failed, canceled) is reused: the old record is replaced.
"""

from __future__ import annotations

import abc
import builtins
import re
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from offload.jobs import QUEUED, Job, JobQuery, Outcome, ScheduleRun, SearchResult, WorkerInfo

#: How many of its newest jobs an engine without a search index examines for a search with text, a time range or
#: another order (``Store.search``'s fallback).
SEARCH_SCAN_LIMIT = 20_000


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def mark_stored(job: Job, now: float) -> Job:
    """``job``, updated to what an engine that keeps no Python objects of its own stored: not a duplicate, and
    enqueued at ``now`` if queued. Such engines return the caller's Job so rather than a copy per job."""
    job.duplicate = False
    if job.state == QUEUED:
        job.enqueued_at = now
    return job


class Store(abc.ABC):
    """Base class of the storage engines. See the module docstring for the contract."""

    scheme: ClassVar[str]
    #: How long an engine's ``wait_for_work`` may take to notice new work when it polls (seconds).
    poll_interval: ClassVar[float] = 0.0

    def __init__(self, url: str, site_id: str = "default") -> None:
        self.url = url
        self.site_id = site_id
        self.prefix = f"{site_id}:"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.safe_url} site={self.site_id!r}>"

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for logs and error messages."""
        return redact_url(self.url)

    def qname(self, queue: str) -> str:
        return self.prefix + queue

    def unqname(self, stored: str) -> str:
        return stored[len(self.prefix):] if stored.startswith(self.prefix) else stored

    # -- lifecycle ---------------------------------------------------------------------------------------
    @abc.abstractmethod
    def open(self) -> None:
        """Connect and apply pending schema migrations; raise ``StoreUnavailable`` if unreachable."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections. The store may be opened again."""

    @abc.abstractmethod
    def migrate(self) -> int:
        """Apply pending schema migrations (idempotent); return the schema version now in place."""

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers."""
        self.counts()

    def __enter__(self) -> Store:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- producer ----------------------------------------------------------------------------------------
    def enqueue(self, job: Job, now: float) -> Job:
        """Store a new job (state ``queued`` or ``scheduled`` as given). Returns the stored job (``job`` itself,
        updated, where the engine keeps no Python objects of its own), or the existing pending job with
        ``duplicate=True`` when the id or unique key is taken."""
        return self.enqueue_many([job], now)[0]

    @abc.abstractmethod
    def enqueue_many(self, jobs: Sequence[Job], now: float) -> list[Job]:
        """``enqueue`` for many jobs in one round trip; one result per job, in order."""

    # -- worker ------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def claim(self, queues: Sequence[str], worker_id: str, lease: float, limit: int, now: float) -> list[Job]:
        """Promote due scheduled jobs, then take up to ``limit`` queued jobs, earlier queues first (paused ones
        skipped) and by priority (0 first), then FIFO, within a queue; each becomes ``started`` with a fresh
        ``lease_token``, ``lease_until = now + lease``, ``worker = worker_id``, ``started_at = now`` and
        ``attempts + 1``."""

    @abc.abstractmethod
    def extend_leases(self, worker_id: str, held: dict[str, str], lease: float, now: float) -> list[str]:
        """Extend the leases of ``held`` (job id -> token) to ``now + lease``; return the ids that are no
        longer held with that token (canceled, deleted, expired and taken by another worker)."""

    @abc.abstractmethod
    def settle(self, outcomes: Sequence[Outcome], now: float) -> list[bool]:
        """Apply outcomes of claimed jobs; False for each one fenced off (token no longer current)."""

    @abc.abstractmethod
    def requeue_expired(self, now: float) -> list[Job]:
        """Return started jobs whose lease ended before ``now`` to ``queued`` (attempt counted, an
        ``abandoned`` error appended), or fail them (reason ``abandoned``) when no attempts are left.
        A requeued job goes back to its place (its ``enqueued_at`` is kept; Redis: the head of its queue), not
        behind the backlog: a dead worker's jobs have waited their turn already. Returns the jobs in their new
        state."""

    @abc.abstractmethod
    def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        """Block until a job may be claimable from ``queues`` (True) or ``timeout`` seconds pass (False).
        Returns at once if claimable work exists now. May be called from a thread other than the one
        using the other verbs; spurious True is allowed, a missed wake-up is not."""

    def wait_and_claim(
        self, queues: Sequence[str], worker_id: str, lease: float, limit: int, timeout: float
    ) -> list[Job] | None:
        """``wait_for_work``, then ``claim`` as soon as work may be there, with ``now`` the time of the claim
        (this process's clock): the jobs claimed (possibly none), or None when ``timeout`` seconds passed with
        nothing to claim. An engine that can wait and claim in one exchange overrides this."""
        if not self.wait_for_work(queues, timeout):
            return None
        return self.claim(queues, worker_id, lease, limit, time.time())

    @abc.abstractmethod
    def set_progress(self, job_id: str, progress: dict[str, Any] | None, meta: dict[str, Any] | None) -> bool:
        """Store a job's progress and/or meta (None leaves a field as it is). False if no such job."""

    # -- management --------------------------------------------------------------------------------------
    @abc.abstractmethod
    def get(self, job_id: str) -> Job | None:
        """The job with this id on this site, or None."""

    @abc.abstractmethod
    def list(
        self,
        queues: Sequence[str] | None = None,
        states: Sequence[str] | None = None,
        limit: int = 100,
        offset: int = 0,
        descending: bool = False,
    ) -> list[Job]:
        """Jobs filtered by queues and states (None: all), ordered by creation time (ties in insertion
        order), oldest first unless ``descending``."""

    @abc.abstractmethod
    def count(self, queues: Sequence[str] | None = None, states: Sequence[str] | None = None) -> int:
        """How many jobs ``list`` would return without a limit."""

    @abc.abstractmethod
    def counts(self) -> dict[str, dict[str, int]]:
        """``{queue: {state: n}}`` for every queue of this site holding jobs (zero counts omitted)."""

    def search(self, query: JobQuery, limit: int = 25, offset: int = 0) -> SearchResult:
        """The jobs matching ``query`` in its order, ``limit`` from ``offset``, and how many match in all.

        Engines with SQL answer in the database. This fallback answers a plain query (queues and states in
        creation order) with ``list`` and ``count``, an id with ``get``, and anything else by filtering the
        ``SEARCH_SCAN_LIMIT`` newest jobs of the query's queues and states (``exact`` is False when there were
        more)."""
        if query.job_id is not None:
            job = self.get(query.job_id)
            hits = [job] if job is not None and query.matches(job) else []
            return SearchResult(hits[offset:offset + limit], len(hits))
        queues = builtins.list(query.queues) if query.queues is not None else None
        states = builtins.list(query.states) if query.states is not None else None
        if query.plain:
            return SearchResult(self.list(queues, states, limit, offset, query.descending), self.count(queues, states))
        newest = self.list(queues, states, SEARCH_SCAN_LIMIT, 0, descending=True)
        hits = [job for job in newest if query.matches(job)]
        hits = sort_jobs(hits, query.sort, query.descending)
        return SearchResult(hits[offset:offset + limit], len(hits), exact=len(newest) < SEARCH_SCAN_LIMIT)

    @abc.abstractmethod
    def waiting_since(self, now: float) -> dict[str, float]:
        """``{queue: t}`` for every queue with waiting work: ``t`` is the earliest moment one of its waiting jobs
        became due (a queued job's ``enqueued_at``, a scheduled job's ``run_at`` once due at ``now``), so
        ``now - t`` is the queue's latency. Queues without waiting work are absent."""

    @abc.abstractmethod
    def cancel(self, job_id: str, now: float) -> Job | None:
        """Cancel a pending job (see the state machine); return it as it is now (a done job is returned
        unchanged), or None if there is no such job."""

    @abc.abstractmethod
    def retry_now(self, job_id: str, now: float) -> Job | None:
        """Queue a failed, canceled or scheduled job to run now; return it as it is now (unchanged when
        its state does not allow this), or None if there is no such job."""

    @abc.abstractmethod
    def to_front(self, job_id: str) -> bool:
        """Move a queued job to the head of its queue (RQ's ``at_front``): the next claim of that queue takes it
        first, ahead of every priority. Its priority becomes 0 and its ``enqueued_at`` (its place in the queue)
        just earlier than that of every other queued job of the queue. False if there is no such queued job."""

    @abc.abstractmethod
    def delete(self, job_id: str) -> bool:
        """Remove a job record whatever its state (a running attempt is thereby fenced off)."""

    @abc.abstractmethod
    def clear(self, queues: Sequence[str] | None = None) -> int:
        """Delete the queued and scheduled jobs of ``queues`` (None: every queue of the site); return how many."""

    @abc.abstractmethod
    def purge(self, ended_before: float, limit: int = 10_000) -> int:
        """Delete up to ``limit`` done jobs that ended before ``ended_before``; return how many."""

    # -- paused queues -----------------------------------------------------------------------------------
    @abc.abstractmethod
    def pause(self, queue: str, now: float) -> bool:
        """Pause ``queue`` (see the module docstring); False if it was paused already (its time is kept)."""

    @abc.abstractmethod
    def resume(self, queue: str) -> bool:
        """Let workers claim from ``queue`` again, waking idle ones; False if it was not paused."""

    @abc.abstractmethod
    def paused(self) -> dict[str, float]:
        """The paused queues of this site: name -> when it was paused."""

    # -- concurrency limits ------------------------------------------------------------------------------
    @abc.abstractmethod
    def set_limit(self, queue: str, concurrency: int | None) -> None:
        """Limit how many jobs of ``queue`` may be started at once on the site (None: no limit), waking idle
        workers (a raised limit may let them claim)."""

    @abc.abstractmethod
    def limits(self) -> dict[str, int]:
        """The concurrency limits of this site's queues: name -> limit."""

    @abc.abstractmethod
    def set_key_limit(self, queue: str, concurrency: int | None) -> None:
        """Limit how many jobs of ``queue`` with one ``limit_key`` may be started at once (None: no limit); jobs
        without a key are not limited by it. Wakes idle workers."""

    @abc.abstractmethod
    def key_limits(self) -> dict[str, int]:
        """The per-key concurrency limits of this site's queues: name -> limit."""

    # -- workers -----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def register_worker(self, info: WorkerInfo) -> None:
        """Add or refresh a worker's registry entry (also the worker heartbeat)."""

    @abc.abstractmethod
    def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker's registry entry."""

    @abc.abstractmethod
    def list_workers(self, seen_after: float) -> builtins.list[WorkerInfo]:
        """Workers seen after ``seen_after``, ordered by id; older entries may be pruned."""

    @abc.abstractmethod
    def reap_dead_workers(
        self, worker_id: str, now: float, seen_before: float, dead: Sequence[str] = ()
    ) -> builtins.list[Job]:
        """The liveness round trip of worker ``worker_id``, in one exchange: its registry entry (if it has one)
        is seen at ``now`` (its heartbeat); every other worker of the site whose entry was last seen before
        ``seen_before``, or whose id is in ``dead``, is dead: its entry is removed and its started jobs go back to
        ``queued`` at once, as ``requeue_expired`` does for an expired lease (attempt counted, place kept; failed,
        reason ``abandoned``, once attempts are spent), with an error of type ``WorkerLost``. Their late results
        are fenced off like those of an expired lease. Jobs of a worker with no registry entry wait for their
        lease. Returns the jobs changed, in their new state."""

    # -- periodic schedules ------------------------------------------------------------------------------
    @abc.abstractmethod
    def enqueue_periodic(self, name: str, slot: float, job: Job, now: float) -> bool:
        """Atomically: if schedule ``name`` has not yet run slot ``slot`` or a later one, record ``slot``
        and enqueue ``job``; True when this call did it. However many schedulers race, one wins a slot."""

    @abc.abstractmethod
    def schedule_runs(self) -> dict[str, ScheduleRun]:
        """The last slot each schedule ran, by name."""

    # -- records (small JSON documents such as webhook subscriptions) -------------------------------------
    @abc.abstractmethod
    def put_record(self, kind: str, key: str, data: dict[str, Any]) -> None:
        """Create or replace a record."""

    @abc.abstractmethod
    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        """A record, or None."""

    @abc.abstractmethod
    def list_records(self, kind: str) -> builtins.list[tuple[str, dict[str, Any]]]:
        """All records of a kind as (key, data), ordered by key."""

    @abc.abstractmethod
    def delete_record(self, kind: str, key: str) -> bool:
        """Delete a record; False if there was none."""


def sort_jobs(jobs: Sequence[Job], field: str, descending: bool) -> builtins.list[Job]:
    """``jobs`` by ``field`` (jobs without a value last either way), ties in creation order."""
    present = [job for job in jobs if getattr(job, field) is not None]
    absent = [job for job in jobs if getattr(job, field) is None]
    present.sort(key=lambda job: (getattr(job, field), job.created_at), reverse=descending)
    absent.sort(key=lambda job: job.created_at, reverse=descending)
    return present + absent
