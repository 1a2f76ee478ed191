"""Jobs as CKAN code sees them: an ``rq.job.Job`` (so ``isinstance(job, rq.job.Job)`` holds) over offload's record,
with the parts of RQ 2.x's interface that CKAN 2.12 and its extensions use, and ``rq.get_current_job()`` for the
running job.

Gone jobs raise ``NoSuchJob`` (a ``KeyError``, as ``ckan.lib.jobs.job_from_id`` promises, and RQ's
``NoSuchJobError``); operations a job's state does not allow raise ``InvalidOperation`` (RQ's
``InvalidJobOperation``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import rq.exceptions
import rq.job
import rq.utils

from offload import codec, context, funcs
from offload.app import Offload
from offload.contrib.ckan.rq_options import DESCRIPTION_KEY, hidden_meta, rq_meta
from offload.contrib.ckan.site import add_queue_name_prefix, site_app
from offload.errors import InvalidJobState, JobNotFound
from offload.jobs import CANCELED, FAILED, FINISHED, QUEUED, SCHEDULED, STARTED, JobSpec
from offload.jobs import Job as Record

# RQ's job statuses for offload's states (the same words).
_STATUS = {SCHEDULED: "scheduled", QUEUED: "queued", STARTED: "started", FINISHED: "finished",
           FAILED: "failed", CANCELED: "canceled"}


class NoSuchJob(KeyError, rq.exceptions.NoSuchJobError):  # type: ignore[misc]
    """There is no job with that id (any more)."""


class InvalidOperation(rq.exceptions.InvalidJobOperation):  # type: ignore[misc]
    """The job's state does not allow this."""


def no_such_job(job_id: str) -> NoSuchJob:
    return NoSuchJob(f'There is no job with ID "{job_id}".')


async def _await(awaitable: Any) -> Any:
    return await awaitable


class Job(rq.job.Job):  # type: ignore[misc]
    """A background job as CKAN code sees it. It compares and hashes by id. ``meta`` is a dict of JSON values;
    ``save_meta()`` stores changes. RQ methods not listed in docs/ckan.md are not available (RQ's own
    implementation would need RQ's Redis)."""

    connection = None

    def __init__(self, record: Record, app: Offload | None = None,
                 running: context.JobContext | None = None) -> None:
        # rq.job.Job.__init__ is not called: it needs RQ's Redis. Everything CKAN uses is defined here.
        self.record = record
        self._app = app
        self._running = running  # set for the job the running process is performing (save_meta goes there)
        self.meta: dict[str, Any] = rq_meta(record.meta)
        #: Set by ``Worker.perform_job`` when the job raised: ``(type, exception, traceback)``.
        self.exc_info_tuple: tuple[type[BaseException], BaseException, Any] | None = None
        #: Set by ``Worker.perform_job`` when the job returned.
        self.return_value_: Any = None
        #: How the run ended, in the executor's words; set by ``perform_job`` or by the job process.
        self.report: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"Job({self.id!r}, enqueued_at={self.enqueued_at!r})"

    def __str__(self) -> str:
        return f"<Job {self.id}: {self.description}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def app(self) -> Offload:
        if self._app is None:
            self._app = site_app()
        return self._app

    # -- what the job is ---------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.record.id

    @property
    def _id(self) -> str:  # RQ's attribute; ckanext-xloader's `ckan xloader status` reads it
        return self.record.id

    def get_id(self) -> str:
        return self.record.id

    @property
    def args(self) -> list[Any]:
        return list(self.record.args)

    @property
    def kwargs(self) -> dict[str, Any]:
        return self.record.kwargs

    @property
    def origin(self) -> str:
        """The prefixed name of the job's queue, as RQ gives it."""
        return add_queue_name_prefix(self.record.queue)

    @property
    def queue_name(self) -> str:
        """The job's queue without prefix."""
        return self.record.queue

    @property
    def title(self) -> str | None:
        title = self.meta.get("title", self.record.title)
        return None if title is None else str(title)

    @property
    def func_name(self) -> str:
        """The job function's dotted path (``pkg.mod.func``), as RQ gives it."""
        return self.record.target.replace(":", ".")

    @property
    def func(self) -> Callable[..., Any]:
        return funcs.resolve(self.record.target)

    def get_call_string(self) -> str:
        """``pkg.mod.func(repr(arg), ..., k=repr(v))``, each repr cut at 75 characters, as RQ writes it."""
        try:
            args, kwargs = codec.decode_payload(self.record.payload)
        except Exception:
            return f"{self.func_name}(...)"
        return str(rq.utils.get_call_string(self.func_name, args, kwargs, max_length=75))

    @property
    def description(self) -> str:
        """The ``description`` given at enqueue, else the call string (RQ's default; CKAN's title is not it)."""
        explicit = (self.record.meta or {}).get(DESCRIPTION_KEY)
        return str(explicit) if explicit is not None else self.get_call_string()

    @property
    def timeout(self) -> int | float:
        """Seconds, -1 for no limit (RQ's convention)."""
        value = self.record.timeout
        if value is None:
            return -1
        return int(value) if float(value).is_integer() else value

    @property
    def created_at(self) -> dt.datetime:
        """When the job was added, as an aware UTC datetime."""
        return self.record.created

    @property
    def enqueued_at(self) -> dt.datetime | None:
        """When the job was put on its queue; None while it is scheduled (as in RQ)."""
        if self.record.state == SCHEDULED:
            return None
        ts = self.record.enqueued_at if self.record.enqueued_at is not None else self.record.created_at
        return dt.datetime.fromtimestamp(ts, dt.timezone.utc)

    @property
    def started_at(self) -> dt.datetime | None:
        return self.record.started

    @property
    def ended_at(self) -> dt.datetime | None:
        return self.record.ended

    @property
    def worker_name(self) -> str | None:
        return self.record.worker

    @property
    def retries_left(self) -> int:
        return max(0, self.record.max_attempts - self.record.attempts)

    @property
    def exc_info(self) -> str | None:
        """The traceback of the job's failure (text), as RQ keeps it."""
        error = self.record.error
        if not error or self.record.state == FINISHED:
            return None
        return str(error.get("traceback") or f"{error.get('type')}: {error.get('message')}")

    def spec(self) -> JobSpec:
        return self.record.spec()._replace(meta={**self.meta, **hidden_meta(self.record.meta)})

    # -- state -------------------------------------------------------------------------------------------
    def get_status(self, refresh: bool = True) -> str:
        """``scheduled``, ``queued``, ``started``, ``finished``, ``failed`` or ``canceled``; ``NoSuchJob`` (RQ's
        ``NoSuchJobError``) once the job is gone."""
        if refresh:
            self.refresh()
        return _STATUS.get(self.record.state, self.record.state)

    @property
    def is_queued(self) -> bool:
        return self.record.state == QUEUED

    @property
    def is_scheduled(self) -> bool:
        return self.record.state == SCHEDULED

    @property
    def is_started(self) -> bool:
        return self.record.state == STARTED

    @property
    def is_finished(self) -> bool:
        return self.record.state == FINISHED

    @property
    def is_failed(self) -> bool:
        return self.record.state == FAILED

    @property
    def is_canceled(self) -> bool:
        return self.record.state == CANCELED

    @property
    def is_deferred(self) -> bool:
        return False  # offload has no job dependencies

    @property
    def is_stopped(self) -> bool:
        return False

    def get_position(self) -> int | None:
        """The job's place in its queue (0: next), or None when it is not waiting there."""
        if self.record.state != QUEUED:
            return None
        ids = [j.id for j in self.app.list_jobs([self.record.queue], [QUEUED], limit=100_000)]
        return ids.index(self.id) if self.id in ids else None

    def return_value(self, refresh: bool = False) -> Any:
        if refresh:
            self.refresh()
        return self.record.result

    @property
    def result(self) -> Any:
        return self.record.result

    def refresh(self) -> None:
        """Read the job again from the store (``NoSuchJob`` if it is gone)."""
        record = self.app.store.get(self.id)
        if record is None:
            raise no_such_job(self.id)
        self.record = record
        self.meta = rq_meta(record.meta)

    def get_meta(self, refresh: bool = True) -> dict[str, Any]:
        if refresh:
            self.refresh()
        return self.meta

    def save_meta(self) -> None:
        """Store ``meta`` (JSON values only)."""
        meta = {**codec.to_jsonable(self.meta, "meta"), **hidden_meta(self.record.meta)}
        if self._running is not None:  # the running job: through its own channel (the worker stores it)
            self._running.meta.clear()
            self._running.update_meta(**meta)
            return
        self.app.store.set_progress(self.id, None, meta)

    save = save_meta

    # -- managing ----------------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Cancel a scheduled, queued or running job (a running job is stopped); it stays in the history as
        canceled. ``InvalidOperation`` for a job that is done already."""
        try:
            self.app.cancel(self.id)
        except InvalidJobState as exc:
            raise InvalidOperation(str(exc)) from None
        except JobNotFound:
            raise no_such_job(self.id) from None

    def delete(self, pipeline: Any = None, remove_from_queue: bool = True, delete_dependents: bool = False) -> None:
        """Remove the job whatever its state, as RQ does: silently when it is gone already, and without stopping
        it when it is running (CKAN's worker lets the running attempt finish and drops its outcome)."""
        self.app.store.delete(self.id)

    def requeue(self, at_front: bool = False) -> Job:
        """Queue a failed or canceled job again (RQ's ``requeue``), at the head of its queue with ``at_front``."""
        try:
            record = self.app.retry(self.id)
            if at_front and self.app.store.to_front(record.id):
                record = self.app.store.get(record.id) or record
            return Job(record, self.app)
        except InvalidJobState as exc:
            raise InvalidOperation(str(exc)) from None
        except JobNotFound:
            raise no_such_job(self.id) from None

    # -- running -----------------------------------------------------------------------------------------
    def run(self) -> Any:
        """Call the job function with the job's arguments, in this process; returns what it returns (an
        ``async def`` job is awaited)."""
        args, kwargs = codec.decode_payload(self.record.payload)
        result = funcs.job_function(self.record.func, self.record.task)(*args, **kwargs)
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
        return result

    def perform(self) -> Any:
        """Run the job here and now, as RQ's ``perform``: the job is ``rq.get_current_job()`` (and
        ``offload.current_job()``) meanwhile; returns its result and lets its exceptions through; the stored job
        is left as it is."""
        with running(self):
            return self.run()


def _progress_sink(app: Offload) -> context.ProgressSink:
    def sink(job_id: str, progress: dict[str, Any] | None, meta: dict[str, Any] | None) -> None:
        app.store.set_progress(job_id, progress, meta)

    return sink


@contextmanager
def running(job: Job, sink: context.ProgressSink | None = None) -> Iterator[Job]:
    """``job`` is the running job of this thread meanwhile: ``offload.current_job()`` (unless it is already)
    and ``rq.get_current_job()``."""
    current = context.current_job()
    token = None
    if current is None or current.id != job.id:
        spec = job.spec()
        if spec.attempt == 0:
            spec = spec._replace(attempt=1)
        token = context.enter(spec, sink if sink is not None else _progress_sink(job.app))
    stack = rq.job._job_stack
    stack.push(job)
    try:
        yield job
    finally:
        stack.pop()
        if token is not None:
            context.leave(token)


class CurrentJobStack:
    """Stands in for RQ's stack of running jobs (``rq.job._job_stack``, which ``rq.get_current_job()`` reads):
    what RQ's own code pushes comes first; otherwise the offload job running in this thread, as an RQ job (so
    ``get_current_job()`` works in a job run by ``ckan offload worker`` too)."""

    def __init__(self, original: Any) -> None:
        self.original = original

    def push(self, obj: Any) -> Any:
        return self.original.push(obj)

    def pop(self) -> Any:
        return self.original.pop()

    @property
    def top(self) -> Any:
        pushed = self.original.top
        if pushed is not None:
            return pushed
        current = context.current_job()
        if current is None:
            return None
        record = None
        try:
            record = site_app().store.get(current.id)
        except Exception:
            pass  # no store here: what the context knows is enough for the id and meta
        if record is None:
            record = Record(id=current.id, queue=current.queue, title=current.title, state=STARTED,
                            attempts=current.attempt, max_attempts=current.max_attempts, meta=dict(current.meta))
        return Job(record, running=current)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


def install_current_job() -> None:
    """Make ``rq.get_current_job()`` see offload's running job (idempotent)."""
    if not isinstance(rq.job._job_stack, CurrentJobStack):
        rq.job._job_stack = CurrentJobStack(rq.job._job_stack)
