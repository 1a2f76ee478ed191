"""Queues as CKAN code sees them: the parts of RQ 2.x's ``rq.Queue`` that CKAN 2.12 and its extensions use
(``enqueue``, ``enqueue_call``, ``enqueue_in``, ``enqueue_at``, ``fetch_job``, ``jobs``, ``get_jobs``, ``count``,
``empty`` and the job registries), over one queue of the site's store. ``name`` is the prefixed name
(``ckan:<site_id>:<queue>``), as RQ's.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

import rq.exceptions

from offload.app import Offload
from offload.contrib.ckan.rq_job import Job
from offload.contrib.ckan.rq_options import RQ_CALL_OPTIONS, RQ_ENQUEUE_OPTIONS, UNTITLED_KEY, RQOptions, rq_options
from offload.contrib.ckan.site import add_queue_name_prefix, site_app
from offload.jobs import CANCELED, FAILED, FINISHED, QUEUED, SCHEDULED, STARTED

READ_ALL = 100_000


class DuplicateJob(rq.exceptions.DuplicateJobError):  # type: ignore[misc]
    """``unique=True`` and a job with that id exists (RQ's ``DuplicateJobError``)."""


#: Up to this many waiting jobs, a queue's jobs are listed in the order workers take them (jobs put at the front
#: first); beyond, in the order they were added, reading only the slice asked for.
EXACT_ORDER_LIMIT = 1000


class QueueJobs(Sequence[Job]):
    """The waiting jobs of a queue, next first, read from the store on use (``queue.jobs[:200]`` of a long queue
    reads 200)."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue

    def _read(self, offset: int, limit: int) -> list[Job]:
        if limit <= 0:
            return []
        app = self.queue.app
        name = self.queue.queue_name
        if app.store.count([name], [QUEUED]) <= EXACT_ORDER_LIMIT:
            waiting = app.list_jobs([name], [QUEUED], EXACT_ORDER_LIMIT)
            waiting.sort(key=lambda r: (r.enqueued_at if r.enqueued_at is not None else r.created_at, r.created_at))
            return [Job(r, app) for r in waiting[offset:offset + limit]]
        return [Job(r, app) for r in app.list_jobs([name], [QUEUED], limit, offset)]

    def __len__(self) -> int:
        return self.queue.count

    @overload
    def __getitem__(self, index: int) -> Job: ...
    @overload
    def __getitem__(self, index: slice) -> list[Job]: ...
    def __getitem__(self, index: int | slice) -> Job | list[Job]:
        if isinstance(index, slice):
            start, stop, step = index.start or 0, index.stop, index.step
            if start >= 0 and (stop is None or stop >= 0) and step in (None, 1):
                if stop is None:
                    return self._read(start, READ_ALL)
                return self._read(start, stop - start)
            return list(self)[index]
        if index < 0:
            return list(self)[index]
        found = self._read(index, 1)
        if not found:
            raise IndexError("queue index out of range")
        return found[0]

    def __iter__(self) -> Iterator[Job]:
        return iter(self._read(0, READ_ALL))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return repr(list(self))


class JobRegistry:
    """The jobs of a queue in one state, as RQ's registries list them (``queue.scheduled_job_registry``...)."""

    def __init__(self, queue: Queue, state: str | None) -> None:
        self.queue = queue
        self.state = state
        self.name = f"{queue.name}:{state or 'deferred'}"

    def _jobs(self) -> list[Any]:
        if self.state is None:
            return []  # deferred: offload has no job dependencies
        records = self.queue.app.list_jobs([self.queue.queue_name], [self.state], limit=READ_ALL)
        if self.state == SCHEDULED:
            records.sort(key=lambda r: (r.run_at or 0.0, r.created_at))
        return records

    def get_job_ids(self, start: int = 0, end: int = -1, desc: bool = False, cleanup: bool = True) -> list[str]:
        """The ids, oldest first (scheduled: soonest first); ``start``/``end`` inclusive, as RQ's."""
        ids = [r.id for r in self._jobs()]
        if desc:
            ids.reverse()
        return ids[start:] if end == -1 else ids[start:end + 1]

    def get_jobs(self, start: int = 0, end: int = -1, desc: bool = False) -> list[Job]:
        app = self.queue.app
        return [Job(r, app) for r in self._jobs()][start:None if end == -1 else end + 1]

    @property
    def count(self) -> int:
        if self.state is None:
            return 0
        return self.queue.app.store.count([self.queue.queue_name], [self.state])

    def __len__(self) -> int:
        return self.count

    def __contains__(self, item: object) -> bool:
        job_id = item.id if isinstance(item, Job) else item
        if self.state is None or not isinstance(job_id, str):
            return False
        record = self.queue.app.store.get(job_id)
        return record is not None and record.queue == self.queue.queue_name and record.state == self.state

    def get_scheduled_time(self, job_or_id: Job | str) -> dt.datetime:
        """When a scheduled job is due (RQ's ``ScheduledJobRegistry.get_scheduled_time``)."""
        job_id = job_or_id.id if isinstance(job_or_id, Job) else job_or_id
        record = self.queue.app.store.get(job_id)
        if record is None or record.state != SCHEDULED or record.run_at is None:
            raise rq.exceptions.NoSuchJobError(f"Job {job_id} not found in {self.name}")
        return dt.datetime.fromtimestamp(record.run_at, dt.timezone.utc)


def _split_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    """RQ's ``Queue.parse_args``: its options out of the keywords, the rest for the function; explicit
    ``args=`` / ``kwargs=`` instead of positional arguments."""
    options = {name: kwargs.pop(name) for name in RQ_ENQUEUE_OPTIONS if name in kwargs}
    if "args" in kwargs or "kwargs" in kwargs:
        if args:
            raise TypeError("give the job's arguments either positionally or as args=/kwargs=, not both")
        call_args, call_kwargs = kwargs.pop("args", None), kwargs.pop("kwargs", None)
        if kwargs:
            raise TypeError(f"unknown RQ option(s): {', '.join(sorted(kwargs))}")
        return options, list(call_args or []), dict(call_kwargs or {})
    return options, list(args), kwargs


def _aware(when: dt.datetime) -> dt.datetime:
    """A naive datetime is local time, as RQ's scheduler reads it."""
    if not isinstance(when, dt.datetime):
        raise TypeError(f"enqueue_at needs a datetime, not {type(when).__name__}")
    return when if when.tzinfo is not None else when.astimezone()


class Queue:
    """A job queue of this site (the parts of ``rq.Queue`` CKAN and extensions use)."""

    DEFAULT_TIMEOUT = 180

    def __init__(self, queue_name: str, app: Offload | None = None) -> None:
        self.queue_name = queue_name
        self.name = add_queue_name_prefix(queue_name)
        self._app = app

    def __repr__(self) -> str:
        return f"<Queue {self.name!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Queue) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def app(self) -> Offload:
        if self._app is None:
            self._app = site_app()
        return self._app

    # -- what is waiting ---------------------------------------------------------------------------------
    @property
    def jobs(self) -> QueueJobs:
        """The waiting jobs, next first (scheduled jobs are in ``scheduled_job_registry``, as in RQ)."""
        return QueueJobs(self)

    @property
    def job_ids(self) -> list[str]:
        return [job.id for job in self.jobs]

    def get_jobs(self, offset: int = 0, length: int = -1) -> list[Job]:
        return self.jobs[offset:] if length < 0 else self.jobs[offset:offset + length]

    def get_job_ids(self, offset: int = 0, length: int = -1) -> list[str]:
        return [job.id for job in self.get_jobs(offset, length)]

    @property
    def count(self) -> int:
        return self.app.store.count([self.queue_name], [QUEUED])

    def __len__(self) -> int:
        return self.count

    def is_empty(self) -> bool:
        return self.count == 0

    def fetch_job(self, job_id: str) -> Job | None:
        """The job, or None when there is none of that id on this queue."""
        record = self.app.store.get(job_id) if isinstance(job_id, str) else None
        if record is None or record.queue != self.queue_name:
            return None
        return Job(record, self.app)

    @property
    def scheduled_job_registry(self) -> JobRegistry:
        return JobRegistry(self, SCHEDULED)

    @property
    def started_job_registry(self) -> JobRegistry:
        return JobRegistry(self, STARTED)

    @property
    def finished_job_registry(self) -> JobRegistry:
        return JobRegistry(self, FINISHED)

    @property
    def failed_job_registry(self) -> JobRegistry:
        return JobRegistry(self, FAILED)

    @property
    def canceled_job_registry(self) -> JobRegistry:
        return JobRegistry(self, CANCELED)

    @property
    def deferred_job_registry(self) -> JobRegistry:
        return JobRegistry(self, None)

    # -- emptying ----------------------------------------------------------------------------------------
    def empty(self) -> int:
        """Delete the queue's waiting jobs, as RQ's ``empty()``: scheduled, running and done jobs are left
        alone. Returns how many were deleted."""
        removed = 0
        while True:
            waiting = self.app.list_jobs([self.queue_name], [QUEUED], limit=1000)
            if not waiting:
                return removed
            removed += sum(1 for record in waiting if self.app.store.delete(record.id))

    def delete(self, delete_jobs: bool = True) -> None:
        """``empty()``: a queue exists while it holds jobs."""
        if delete_jobs:
            self.empty()

    # -- adding ------------------------------------------------------------------------------------------
    def enqueue_job_with(self, fn: Callable[..., Any] | str, args: Sequence[Any] | None,
                         kwargs: dict[str, Any] | None, options: RQOptions, title: str | None = None,
                         at: dt.datetime | None = None, connection: Any = None) -> Job:
        """Add a job with RQ's options; an existing job with the same id is replaced (RQ's default), or
        ``DuplicateJob`` with ``unique``. ``connection``: in the application's transaction (``Offload.enqueue``)."""
        app = self.app
        if options.at_front and at is not None:
            raise ValueError("at_front=True is not supported for a scheduled job: offload runs it in its turn once "
                             "it is due")
        if options.unique and options.job_id is not None and app.store.get(options.job_id) is not None:
            raise DuplicateJob(f"Job with ID {options.job_id} already exists")
        extra: dict[str, Any] = options.enqueue_options()
        if title is None and "title" not in options.meta:
            extra["meta"] = {**options.meta, UNTITLED_KEY: True}
        if connection is not None:
            extra["connection"] = connection
        if at is not None:
            extra["at"] = at
        call_args = list(args) if args is not None else []
        call_kwargs = dict(kwargs) if kwargs is not None else {}
        record = app.enqueue(fn, call_args, call_kwargs, title=title, queue=self.queue_name, **extra)
        if record.duplicate:
            # RQ overwrites a job with the same id; a running one goes on (CKAN's worker drops its outcome).
            app.store.delete(record.id)
            record = app.enqueue(fn, call_args, call_kwargs, title=title, queue=self.queue_name, **extra)
        if options.at_front and app.store.to_front(record.id):
            record = app.store.get(record.id) or record
        return Job(record, app)

    def enqueue_call(self, func: Callable[..., Any] | str, args: Sequence[Any] | None = None,
                     kwargs: dict[str, Any] | None = None, timeout: Any = None, **options: Any) -> Job:
        """RQ's ``enqueue_call``: the function's arguments explicit, RQ's options as keywords."""
        unknown = sorted(set(options) - set(RQ_CALL_OPTIONS) - {"task_status"})
        if unknown:
            raise TypeError(f"enqueue_call() got unknown RQ option(s): {', '.join(unknown)}")
        return self.enqueue_job_with(func, args, kwargs, rq_options({**options, "timeout": timeout}))

    def enqueue(self, f: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Job:
        """RQ's ``enqueue``: RQ's options (``job_timeout``, ``job_id``, ``meta`` ...) are taken out of the
        keywords, the rest go to the function."""
        options, call_args, call_kwargs = _split_call(args, kwargs)
        return self.enqueue_job_with(f, call_args, call_kwargs, rq_options(options, "job_timeout"))

    def enqueue_at(self, datetime: dt.datetime, f: Callable[..., Any] | str, *args: Any, **kwargs: Any) -> Job:
        """RQ's ``enqueue_at``: a scheduled job, due at ``datetime`` (naive: local time, as RQ)."""
        options, call_args, call_kwargs = _split_call(args, kwargs)
        return self.enqueue_job_with(f, call_args, call_kwargs, rq_options(options, "job_timeout"),
                                     at=_aware(datetime))

    def enqueue_in(self, time_delta: dt.timedelta | float, func: Callable[..., Any] | str, *args: Any,
                   **kwargs: Any) -> Job:
        """RQ's ``enqueue_in``: a scheduled job, due after ``time_delta`` (a timedelta, or seconds)."""
        seconds = time_delta.total_seconds() if isinstance(time_delta, dt.timedelta) else time_delta
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
            raise TypeError(f"enqueue_in needs a timedelta or seconds, not {time_delta!r}")
        when = dt.datetime.fromtimestamp(time.time() + max(0.0, float(seconds)), dt.timezone.utc)
        return self.enqueue_at(when, func, *args, **kwargs)
