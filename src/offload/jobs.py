"""The job record and the small value types that travel between producers, stores and workers.

Times are UTC seconds since the epoch (floats) in storage and on the wire; the ``*_dt`` properties give
aware datetimes. Arguments and results stay encoded (offload JSON text) until someone needs them, so a
worker's supervisor never decodes what only its executor child uses.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from offload import codec
from offload.errors import InvalidQueueName

SCHEDULED = "scheduled"
QUEUED = "queued"
STARTED = "started"
FINISHED = "finished"
FAILED = "failed"
CANCELED = "canceled"

STATES = (SCHEDULED, QUEUED, STARTED, FINISHED, FAILED, CANCELED)
PENDING_STATES = (SCHEDULED, QUEUED, STARTED)
DONE_STATES = (FINISHED, FAILED, CANCELED)

_QUEUE_RE = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_JOB_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,200}")


def check_queue_name(name: object) -> str:
    if not isinstance(name, str) or not _QUEUE_RE.fullmatch(name):
        raise InvalidQueueName(
            f"invalid queue name {name!r}: use 1-100 letters, digits, '_', '-' or '.'"
        )
    return name


def check_job_id(job_id: object) -> str:
    if not isinstance(job_id, str) or not _JOB_ID_RE.fullmatch(job_id):
        raise ValueError(f"invalid job id {job_id!r}: use 1-200 letters, digits, '_', '-', '.' or ':'")
    return job_id


#: Priorities within a queue: 0 runs first (the default), 9 last.
PRIORITIES = range(10)


def check_concurrency(concurrency: object) -> int | None:
    """``concurrency`` if it is a whole number of at least 1 (or None: no limit), else ValueError naming it."""
    if concurrency is None:
        return None
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"invalid concurrency limit {concurrency!r}: use a whole number of at least 1")
    return concurrency


def check_limit_key(key: object) -> str:
    """``key`` if it is a string of 1-200 characters, else ValueError naming the value."""
    if not isinstance(key, str) or not 0 < len(key) <= 200:
        raise ValueError(f"invalid limit_key {key!r}: use a string of 1 to 200 characters")
    return key


def check_priority(priority: object) -> int:
    """``priority`` if it is an int from 0 to 9, else ValueError naming the value."""
    if isinstance(priority, bool) or not isinstance(priority, int) or priority not in PRIORITIES:
        raise ValueError(f"invalid priority {priority!r}: use a whole number from 0 (first) to 9 (last)")
    return priority


def new_id() -> str:
    """A random 128-bit id in hex, like ``uuid4().hex`` but without building a UUID object."""
    return os.urandom(16).hex()


def new_ids(count: int) -> list[str]:
    """``count`` ids like ``new_id``'s from one read of the system's random source (0.2 instead of 0.75 us each)."""
    text = os.urandom(16 * count).hex()
    return [text[i : i + 32] for i in range(0, 32 * count, 32)]


def to_datetime(ts: float | None) -> dt.datetime | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.timezone.utc)


class JobSpec(NamedTuple):
    """What a process needs to run one attempt of a job (a worker sends it to its executor; kept small)."""

    id: str
    func: str | None
    task: str | None
    payload: str
    attempt: int
    max_attempts: int
    queue: str
    title: str | None
    meta: dict[str, Any]
    timeout: float | None = None  # the soft time limit: JobTimeout is raised in the job after this many seconds


@dataclass
class Job:
    """One unit of work and everything known about it.

    ``func`` is an import path (``pkg.mod:func``) or ``task`` a registered task name; exactly one is set.
    ``attempts`` counts executions started (incremented at claim). ``timeout`` is seconds or ``None``
    (no limit). ``error`` describes the last failure; ``errors`` keeps every failed attempt's error.
    """

    id: str
    queue: str
    func: str | None = None
    task: str | None = None
    payload: str = "[[],{}]"
    title: str | None = None
    state: str = QUEUED
    created_at: float = 0.0
    enqueued_at: float | None = None
    run_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    attempts: int = 0
    max_attempts: int = 1
    retry: dict[str, Any] | None = None
    timeout: float | None = None
    result_json: str | None = None
    error: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    worker: str | None = None
    lease_until: float | None = None
    lease_token: str | None = None
    progress: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    unique_key: str | None = None
    #: Order within its queue: 0 (the default) first, 9 last; FIFO among equals.
    priority: int = 0
    #: The key this job counts against within its queue's per-key concurrency limit (None: it counts only against
    #: the queue's limit).
    limit_key: str | None = None
    # Set on the Job returned by enqueue when an equal pending job already existed (nothing was added).
    duplicate: bool = field(default=False, compare=False)
    # Set by a store that could not decode this job's record (corrupted, or written by something else): what is
    # wrong with it. Such a job is never run; see ``record_problem``.
    defect: str | None = field(default=None, compare=False)

    def spec(self, attempt: int | None = None) -> JobSpec:
        """What a process needs to run this job's current attempt (or attempt ``attempt``)."""
        return JobSpec(self.id, self.func, self.task, self.payload, self.attempts if attempt is None else attempt,
                       self.max_attempts, self.queue, self.title, self.meta, self.timeout)

    @property
    def target(self) -> str:
        return self.task if self.task is not None else (self.func or "")

    @property
    def args(self) -> list[Any]:
        return codec.decode_payload(self.payload)[0]

    @property
    def kwargs(self) -> dict[str, Any]:
        return codec.decode_payload(self.payload)[1]

    @property
    def result(self) -> Any:
        return None if self.result_json is None else codec.loads(self.result_json)

    @property
    def created(self) -> dt.datetime:
        created = to_datetime(self.created_at)
        assert created is not None
        return created

    @property
    def started(self) -> dt.datetime | None:
        return to_datetime(self.started_at)

    @property
    def ended(self) -> dt.datetime | None:
        return to_datetime(self.ended_at)

    @property
    def scheduled_for(self) -> dt.datetime | None:
        return to_datetime(self.run_at)

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.started_at)

    def describe(self) -> str:
        """``<id> ("<title>") on queue "<queue>"``, the form every log line uses."""
        title = f' ("{self.title}")' if self.title else ""
        return f'{self.id}{title} on queue "{self.queue}"'

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (arguments and result decoded) for the CLI and the API."""
        try:
            args, kwargs = codec.decode_payload(self.payload)
            plain_args: Any = codec.to_jsonable(args)
            plain_kwargs: Any = codec.to_jsonable(kwargs)
        except Exception:  # a corrupted record is still shown, as text
            plain_args, plain_kwargs = self.payload, None
        try:
            result = None if self.result_json is None else codec.to_jsonable(self.result)
        except Exception:
            result = self.result_json
        return {
            "id": self.id,
            "queue": self.queue,
            "func": self.func,
            "task": self.task,
            "title": self.title,
            "state": self.state,
            "args": plain_args,
            "kwargs": plain_kwargs,
            "created_at": self.created_at,
            "enqueued_at": self.enqueued_at,
            "run_at": self.run_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "timeout": self.timeout,
            "result": result,
            "error": self.error,
            "errors": self.errors,
            "worker": self.worker,
            "progress": self.progress,
            "meta": self.meta,
            "unique_key": self.unique_key,
            "priority": self.priority,
            "limit_key": self.limit_key,
        }


def record_problem(job: Job) -> str | None:
    """Why a claimed job cannot be run as stored (a corrupted or foreign record), or None when it can.

    Stores decode what they can of a damaged record and say what they could not (``defect``); the fields a
    worker relies on must also have the right types, whatever wrote them.
    """
    if job.defect:
        return job.defect
    target = job.func if job.task is None else job.task
    if (job.func is None) == (job.task is None) or not isinstance(target, str):
        return "it must name exactly one function or task, as text"
    if not isinstance(job.payload, str):
        return f"its payload is {type(job.payload).__name__}, not offload JSON text"
    checks: tuple[tuple[str, Any, type, bool], ...] = (
        ("meta", job.meta, dict, False), ("retry", job.retry, dict, True), ("errors", job.errors, list, False),
        ("progress", job.progress, dict, True))
    for name, value, kind, optional in checks:
        if not (isinstance(value, kind) or (optional and value is None)):
            return f"its {name} is a {type(value).__name__}, not a JSON {'object' if kind is dict else 'array'}"
    numbers: tuple[tuple[Any, bool], ...] = ((job.attempts, False), (job.max_attempts, False), (job.timeout, True),
                                             (job.priority, False))
    for value, optional in numbers:
        if isinstance(value, bool) or not (isinstance(value, (int, float)) or (optional and value is None)):
            return "its attempts, max_attempts, timeout or priority is not a number"
    return None


OutcomeKind = Literal["finish", "fail", "retry", "release", "snooze"]


@dataclass
class Outcome:
    """How one claimed job ended, as the worker tells the store.

    ``finish``: ran and returned ``result_json``. ``fail``: ran and failed for good (``error``).
    ``retry``: failed but goes back to ``scheduled`` until ``retry_at`` (``error`` recorded).
    ``release``: never ran (prefetched, or its child was killed for another job): back to ``queued`` and the
    attempt taken at claim is given back.
    ``snooze``: the job asked to run later (``offload.Snooze``): back to ``scheduled`` until ``retry_at``, the
    attempt given back, no error recorded.
    ``payload`` (retry only): the arguments of the next attempts, when the job asked for new ones.
    ``max_attempts`` (retry, fail): the job's new attempt budget, when the job asked for another (``max_retries``).
    """

    job_id: str
    token: str
    kind: OutcomeKind
    result_json: str | None = None
    error: dict[str, Any] | None = None
    retry_at: float | None = None
    ended_at: float = 0.0
    payload: str | None = None
    max_attempts: int | None = None


@dataclass
class WorkerInfo:
    """A running worker as the registry shows it."""

    id: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: float
    last_seen: float
    jobs: list[str] = field(default_factory=list)
    processed: int = 0
    failed: int = 0
    version: str = ""
    #: Which processes' PIDs ``pid`` is comparable with (the boot id and PID namespace; see worker/liveness.py),
    #: and the supervisor's start time in clock ticks since boot: together they tell a worker on the same host
    #: whether this one's process is gone.
    host_id: str = ""
    pid_start: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "hostname": self.hostname,
            "pid": self.pid,
            "queues": self.queues,
            "concurrency": self.concurrency,
            "started_at": self.started_at,
            "last_seen": self.last_seen,
            "jobs": self.jobs,
            "processed": self.processed,
            "failed": self.failed,
            "version": self.version,
            "host_id": self.host_id,
            "pid_start": self.pid_start,
        }


@dataclass
class ScheduleRun:
    """The last slot a periodic schedule enqueued, kept by the store so that each slot runs once."""

    name: str
    last_slot: float
    job_id: str | None


#: What a job search may sort by (None values last in either direction; ties by creation order).
SORT_FIELDS = ("created_at", "enqueued_at", "run_at", "started_at", "ended_at", "priority")
MAX_SEARCH_TEXT = 200


@dataclass(frozen=True)
class JobQuery:
    """A job search: every given criterion must hold. ``text`` is a case-insensitive substring of the title, the
    function path or the task name; ``args`` a case-insensitive substring of the arguments as stored (offload's JSON
    of ``[args, kwargs]``, e.g. ``"user_id": 42``); ``created_after`` is inclusive, ``created_before`` exclusive."""

    queues: tuple[str, ...] | None = None
    states: tuple[str, ...] | None = None
    job_id: str | None = None
    text: str | None = None
    args: str | None = None
    created_after: float | None = None
    created_before: float | None = None
    sort: str = "created_at"
    descending: bool = False

    def __post_init__(self) -> None:
        if self.sort not in SORT_FIELDS:
            raise ValueError(f"cannot sort by {self.sort!r}; sort by one of {', '.join(SORT_FIELDS)}")
        for state in self.states or ():
            if state not in STATES:
                raise ValueError(f"unknown state {state!r}; states are {', '.join(STATES)}")
        for name, value in (("search text", self.text), ("argument text", self.args)):
            if value is not None and not 0 < len(value) <= MAX_SEARCH_TEXT:
                raise ValueError(f"{name} must be 1-{MAX_SEARCH_TEXT} characters")

    @property
    def plain(self) -> bool:
        """Only queues and states, in creation order: what ``Store.list`` and ``Store.count`` answer."""
        return (self.job_id is None and self.text is None and self.args is None and self.created_after is None
                and self.created_before is None and self.sort == "created_at")

    def matches(self, job: Job) -> bool:
        """Whether ``job`` meets every criterion."""
        if self.job_id is not None and job.id != self.job_id:
            return False
        if (self.queues is not None and job.queue not in self.queues) or (
                self.states is not None and job.state not in self.states):
            return False
        if self.created_after is not None and job.created_at < self.created_after:
            return False
        if self.created_before is not None and job.created_at >= self.created_before:
            return False
        if self.args is not None and self.args.lower() not in job.payload.lower():
            return False
        if self.text is not None:
            needle = self.text.lower()
            return any(needle in (value or "").lower() for value in (job.title, job.func, job.task))
        return True


@dataclass
class SearchResult:
    """A page of a search, the number of jobs that match in all, and whether that number is exact (an engine
    without a search index examines only its newest jobs: see ``Store.search``)."""

    jobs: list[Job]
    total: int
    exact: bool = True
