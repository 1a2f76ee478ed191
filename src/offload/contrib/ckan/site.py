"""One CKAN site's view of offload: the store named by CKAN's config, and RQ-shaped job and queue objects.

CKAN code handles ``rq.Job`` and ``rq.Queue`` objects through ``ckan.lib.jobs``; the classes here offer the
parts of them that CKAN and its extensions use, over offload's job records. Queue names follow CKAN: the
objects carry the prefixed name (``ckan:<site_id>:<queue>``), offload stores the plain one under the site id.
Everything reads CKAN's config at call time, as CKAN does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from ckan.common import config

from offload import codec, funcs
from offload.app import Offload
from offload.config import SETTINGS, parse_duration
from offload.errors import JobNotFound
from offload.jobs import CANCELED, FAILED, FINISHED, QUEUED, SCHEDULED, STARTED, JobSpec
from offload.jobs import Job as Record

DEFAULT_QUEUE_NAME = "default"
#: How many attempts a CKAN job gets unless ``ckan.offload.jobs.max_attempts`` says otherwise: CKAN's jobs
#: were never retried, so they need not be idempotent.
DEFAULT_MAX_ATTEMPTS = 1

_apps: dict[tuple[str, str, int], Offload] = {}
_apps_lock = threading.Lock()


def store_url() -> str:
    """``ckan.offload.store`` if set, else ``ckan.redis.url`` (the Redis CKAN's RQ used)."""
    url = config.get("ckan.offload.store") or config.get("ckan.redis.url")
    if not url:
        raise RuntimeError("set ckan.offload.store (or ckan.redis.url) in CKAN's config to a store URL")
    return str(url)


def site_id() -> str:
    return str(config.get("ckan.site_id") or "default")


def offload_settings() -> dict[str, Any]:
    """offload settings given in CKAN's config as ``ckan.offload.<key>`` (``ckan.offload.jobs.keep = 3d``)."""
    settings: dict[str, Any] = {"offload.jobs.max_attempts": DEFAULT_MAX_ATTEMPTS}
    for ckan_key in list(config):
        key = ckan_key[len("ckan."):] if ckan_key.startswith("ckan.offload.") else None
        if key in SETTINGS and key not in ("offload.store", "offload.site_id"):
            value = config[ckan_key]
            if value not in (None, ""):
                settings[key] = value if isinstance(value, str) else str(value)
    return settings


def site_app() -> Offload:
    """The ``Offload`` of this site's store, one per process (a forked web worker opens its own)."""
    key = (store_url(), site_id(), os.getpid())
    app = _apps.get(key)
    if app is None:
        with _apps_lock:
            app = _apps.get(key)
            if app is None:
                # Connections inherited from a parent process are left alone, not closed: closing them here
                # would close the parent's sockets too.
                for old in [k for k in _apps if k[2] != key[2]]:
                    del _apps[old]
                overrides = {k.replace(".", "__"): v for k, v in offload_settings().items()}
                app = _apps[key] = Offload(store=key[0], site_id=key[1], **overrides)
    return app


def queue_name_prefix() -> str:
    return f"ckan:{site_id()}:"


def add_queue_name_prefix(name: str) -> str:
    """``"default"`` -> ``"ckan:<site_id>:default"``."""
    return queue_name_prefix() + name


def remove_queue_name_prefix(name: str) -> str:
    """``"ckan:<site_id>:default"`` -> ``"default"``; ``ValueError`` for a name without this site's prefix."""
    prefix = queue_name_prefix()
    if not name.startswith(prefix):
        raise ValueError(f'Queue name "{name}" is not prefixed.')
    return name[len(prefix):]


def job_timeout(value: Any) -> float:
    """Seconds from ``rq_kwargs["timeout"]`` or ``ckan.jobs.timeout`` (an int, or RQ's ``"1h"``); -1: none."""
    if value is None:
        value = config.get("ckan.jobs.timeout") or 180
    if isinstance(value, str):
        return parse_duration(value)
    return float(value)


async def _await(awaitable: Any) -> Any:
    return await awaitable


# RQ's job statuses for offload's states.
_STATUS = {SCHEDULED: "scheduled", QUEUED: "queued", STARTED: "started", FINISHED: "finished",
           FAILED: "failed", CANCELED: "canceled"}


class Job:
    """A background job as CKAN code sees it (the parts of ``rq.job.Job`` CKAN and extensions use).

    Jobs compare and hash by id. ``meta`` is a dict of JSON values; ``save_meta()`` stores changes.
    """

    def __init__(self, record: Record, app: Offload | None = None) -> None:
        self.record = record
        self._app = app
        self.meta: dict[str, Any] = dict(record.meta or {})
        #: Set by ``Worker.perform_job`` when the job raised: ``(type, exception, traceback)``.
        self.exc_info_tuple: tuple[type[BaseException], BaseException, Any] | None = None
        #: Set by ``Worker.perform_job`` when the job returned.
        self.return_value_: Any = None
        #: How the run ended, in the executor's words (``{"ok": True, "result": ...}`` or ``{"ok": False,
        #: "error": {...}}``); set by ``perform_job`` or by the job process.
        self.report: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<Job {self.id}: {self.func_name}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def app(self) -> Offload:
        if self._app is None:
            self._app = site_app()
        return self._app

    @property
    def id(self) -> str:
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
    def description(self) -> str:
        return self.title or self.func_name

    @property
    def func_name(self) -> str:
        """The job function's dotted path (``pkg.mod.func``), as RQ gives it."""
        return self.record.target.replace(":", ".")

    @property
    def func(self) -> Callable[..., Any]:
        return funcs.resolve(self.record.target)

    @property
    def timeout(self) -> float | int:
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
        ts = self.record.enqueued_at if self.record.enqueued_at is not None else self.record.created_at
        return dt.datetime.fromtimestamp(ts, dt.timezone.utc)

    @property
    def started_at(self) -> dt.datetime | None:
        return self.record.started

    @property
    def ended_at(self) -> dt.datetime | None:
        return self.record.ended

    @property
    def exc_info(self) -> str | None:
        """The traceback of the job's failure (text), as RQ keeps it."""
        error = self.record.error
        if not error:
            return None
        return str(error.get("traceback") or f"{error.get('type')}: {error.get('message')}")

    def spec(self) -> JobSpec:
        return self.record.spec()._replace(meta=self.meta)

    def run(self) -> Any:
        """Call the job function with the job's arguments, in this process; returns what it returns."""
        args, kwargs = codec.decode_payload(self.record.payload)
        result = funcs.job_function(self.record.func, self.record.task)(*args, **kwargs)
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
        return result

    def get_status(self, refresh: bool = True) -> str:
        """``queued``, ``scheduled``, ``started``, ``finished``, ``failed`` or ``canceled``."""
        if refresh:
            self.refresh()
        return _STATUS.get(self.record.state, self.record.state)

    @property
    def is_queued(self) -> bool:
        return self.record.state == QUEUED

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

    def return_value(self, refresh: bool = False) -> Any:
        if refresh:
            self.refresh()
        return self.record.result

    @property
    def result(self) -> Any:
        return self.record.result

    def refresh(self) -> None:
        """Read the job again from the store (``KeyError`` if it is gone)."""
        record = self.app.store.get(self.id)
        if record is None:
            raise KeyError(f'There is no job with ID "{self.id}".')
        self.record = record
        self.meta = dict(record.meta or {})

    def save_meta(self) -> None:
        """Store ``meta`` (JSON values only)."""
        self.app.store.set_progress(self.id, None, codec.to_jsonable(self.meta, "meta"))

    save = save_meta

    def cancel(self) -> None:
        """Cancel the job; it stays in the history as canceled (a running job's process is stopped)."""
        self.app.cancel(self.id)

    def delete(self) -> None:
        """Remove the job (``KeyError`` if it is already gone). A running job's process is stopped."""
        try:
            self.app.delete(self.id)
        except JobNotFound:
            raise KeyError(f'There is no job with ID "{self.id}".') from None


class QueueJobs(Sequence[Job]):
    """The waiting jobs of a queue, next first, read from the store on use: ``queue.jobs[:200]`` reads 200."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue

    def _read(self, offset: int, limit: int) -> list[Job]:
        if limit <= 0:
            return []
        app = self.queue.app
        return [Job(r, app) for r in app.list_jobs([self.queue.queue_name], [QUEUED], limit, offset)]

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
                    return self._read(start, 100_000)
                return self._read(start, stop - start)
            return list(self)[index]
        if index < 0:
            return list(self)[index]
        found = self._read(index, 1)
        if not found:
            raise IndexError("queue index out of range")
        return found[0]

    def __iter__(self) -> Iterator[Job]:
        return iter(self._read(0, 100_000))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return repr(list(self))


class Queue:
    """A job queue of this site (the parts of ``rq.Queue`` CKAN uses). ``name`` is the prefixed name."""

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

    @property
    def jobs(self) -> QueueJobs:
        """The waiting jobs, next first."""
        return QueueJobs(self)

    @property
    def job_ids(self) -> list[str]:
        return [job.id for job in self.jobs]

    @property
    def count(self) -> int:
        return self.app.store.count([self.queue_name], [QUEUED])

    def __len__(self) -> int:
        return self.count

    def is_empty(self) -> bool:
        return self.count == 0

    def fetch_job(self, job_id: str) -> Job | None:
        record = self.app.store.get(job_id)
        if record is None or record.queue != self.queue_name:
            return None
        return Job(record, self.app)

    def empty(self) -> int:
        """Delete the queue's waiting jobs; returns how many."""
        return self.app.clear([self.queue_name])

    def delete(self, delete_jobs: bool = True) -> None:
        """Delete the queue's waiting jobs (a queue exists while it holds jobs)."""
        self.empty()
