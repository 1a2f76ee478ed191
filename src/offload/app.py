"""``Offload``: one site's view of one store, and the verbs applications call."""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import EllipsisType
from typing import TYPE_CHECKING, Any

from offload import codec, funcs, registry, taskstatus, tracing
from offload.config import NO_LIMIT, Config
from offload.errors import (
    InvalidJobState,
    JobFunctionError,
    JobNotFound,
    StoreError,
)
from offload.inline import run_inline
from offload.jobs import (
    CANCELED,
    DONE_STATES,
    FAILED,
    QUEUED,
    SCHEDULED,
    STATES,
    Job,
    WorkerInfo,
    check_concurrency,
    check_job_id,
    check_limit_key,
    check_priority,
    check_queue_name,
    new_id,
    new_ids,
)
from offload.retry import RetryPolicy
from offload.stores import Store, open_store, store_class

if TYPE_CHECKING:
    from pathlib import Path

NO_TIMEOUT = -1
MAX_TIMEOUT = 366 * 86400.0
MAX_RUN_AT = 253402300799.0  # 9999-12-31T23:59:59Z, the last moment a datetime can show
# RQ options CKAN code passes through rq_kwargs that have no meaning here and are safe to ignore.
_IGNORED_RQ_KWARGS = {"result_ttl", "ttl", "failure_ttl"}
_ENQUEUE_OPTIONS = {"rq_kwargs", "max_attempts", "max_retries", "retry", "at", "delay", "unique_key", "job_id",
                    "meta", "task_status", "priority", "limit_key"}


# enqueue options that make a job differ from its neighbours in one enqueue_many: no shared template then.
_PER_CALL_OPTIONS = {"job_id", "meta", "rq_kwargs", "task_status"}


def _copy_for_call(template: Job, job_id: str, args: Any, kwargs: Any, at: float) -> Job:
    """A job like ``template`` (same function and options) with its own id, arguments and creation time, and
    its own copies of everything mutable."""
    fields = template.__dict__.copy()
    fields["id"] = job_id
    fields["payload"] = codec.encode_payload(args if args is not None else [], kwargs if kwargs is not None else {})
    fields["created_at"] = at
    run_at = fields["run_at"]
    fields["state"] = SCHEDULED if run_at is not None and run_at > at else QUEUED
    fields["meta"] = dict(template.meta)
    fields["errors"] = []
    if template.retry is not None:
        fields["retry"] = dict(template.retry)
    job: Job = object.__new__(Job)
    job.__dict__ = fields
    return job


def _timeout(value: Any, default: float) -> float | None:
    """Seconds or None (no limit) from a caller's timeout; ``None`` means the configured default."""
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"timeout must be a number of seconds, not {value!r}")
    if value == NO_LIMIT:
        return None
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise ValueError(
            f"timeout {value!r} is out of range: give seconds between 0 and {MAX_TIMEOUT:.0f}, or -1 for no limit"
        )
    return float(value)


def _shown(job_id: object) -> str:
    """A job id as an error message may print it: control characters escaped, so it stays on one line."""
    text = str(job_id)
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _when(at: Any, delay: Any, now: float) -> float | None:
    """Epoch seconds a job should run at, from ``at`` (datetime, naive = UTC) or ``delay`` (seconds)."""
    run_at = _run_at(at, delay, now)
    if run_at is not None and run_at > MAX_RUN_AT:
        raise ValueError(f"the job would run after the year 9999 (at={at!r}, delay={delay!r}); give a nearer time")
    return run_at


def _run_at(at: Any, delay: Any, now: float) -> float | None:
    if at is not None and delay is not None:
        raise ValueError("give either at= or delay=, not both")
    if at is not None:
        if isinstance(at, dt.datetime):
            aware = at if at.tzinfo is not None else at.replace(tzinfo=dt.timezone.utc)
            return aware.timestamp()
        if isinstance(at, (int, float)) and not isinstance(at, bool) and math.isfinite(at):
            return float(at)
        raise ValueError(f"at must be a datetime, not {at!r}")
    if delay is not None:
        seconds = delay.total_seconds() if isinstance(delay, dt.timedelta) else delay
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
            raise ValueError(f"delay must be seconds or a timedelta, not {delay!r}")
        if seconds < 0:
            raise ValueError(f"delay must not be negative ({delay!r})")
        return now + float(seconds)
    return None


def _task_key(options: dict[str, Any]) -> taskstatus.TaskKey | None:
    """The ``task_status`` option, taken out of ``options`` and validated."""
    value = options.pop("task_status", None)
    return None if value is None else taskstatus.task_key(value)


class Queue:
    """A named queue of one site (RQ/CKAN style accessors)."""

    def __init__(self, app: Offload, name: str) -> None:
        self.app = app
        self.name = check_queue_name(name)

    def __repr__(self) -> str:
        return f"<Queue {self.name!r}>"

    def enqueue(self, fn: Callable[..., Any] | str, args: Any = None, kwargs: Any = None, **options: Any) -> Job:
        return self.app.enqueue(fn, args, kwargs, queue=self.name, **options)

    @property
    def jobs(self) -> list[Job]:
        """The jobs waiting in this queue, next first."""
        return self.app.list_jobs([self.name], [QUEUED], limit=10_000)

    @property
    def job_ids(self) -> list[str]:
        return [job.id for job in self.jobs]

    @property
    def count(self) -> int:
        return self.app.store.count([self.name], [QUEUED])

    def __len__(self) -> int:
        return self.count

    def is_empty(self) -> bool:
        return self.count == 0

    def empty(self) -> int:
        """Delete the queue's waiting jobs (RQ's name for it); returns how many."""
        return self.app.clear([self.name])


class Offload:
    """A site on a store. ``Offload()`` reads the configuration (arguments > environment > ini file >
    defaults); ``Offload(store="redis://...", site_id="portal")`` sets it explicitly."""

    def __init__(
        self,
        store: str | Store | None = None,
        site_id: str | None = None,
        config: Config | str | Path | None = None,
        **settings: Any,
    ) -> None:
        overrides = {key.replace("__", "."): value for key, value in settings.items()}
        if isinstance(store, str):
            overrides["offload.store"] = store
        if site_id is not None:
            overrides["offload.site_id"] = site_id
        if isinstance(config, Config):
            self.config = config.replace(**overrides) if overrides else config
        else:
            self.config = Config.load(config, overrides)
        self._store: Store | None = store if isinstance(store, Store) else None
        if self._store is None:
            store_class(self.config["offload.store"])  # a bad URL or a missing driver fails here, not later
        self._lock = threading.Lock()
        self._valid_queues: set[str] = set()
        self._default_attempts = int(self.config["offload.jobs.max_attempts"])
        self._default_timeout_raw = float(self.config["offload.jobs.timeout"])
        self._default_timeout = _timeout(None, self._default_timeout_raw)

    def __repr__(self) -> str:
        return f"<Offload site={self.site_id!r} store={self.store.safe_url if self._store else '(not open)'}>"

    @property
    def site_id(self) -> str:
        return str(self._store.site_id if self._store else self.config["offload.site_id"])

    @property
    def store(self) -> Store:
        """The store, opened on first use."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = open_store(self.config["offload.store"], self.config["offload.site_id"])
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    # -- producing -----------------------------------------------------------------------------------------
    def build_job(
        self,
        fn: Callable[..., Any] | str | None,
        args: Any = None,
        kwargs: Any = None,
        title: str | None = None,
        queue: str = "default",
        timeout: float | None = None,
        *,
        task: str | None = None,
        now: float | None = None,
        **options: Any,
    ) -> Job:
        """Validate and encode everything about a job without storing it."""
        now = time.time() if now is None else now
        if (fn is None) == (task is None):
            raise JobFunctionError("a job needs a function or a task name (not both)")
        path = funcs.func_path(fn) if fn is not None else None
        if queue not in self._valid_queues:
            check_queue_name(queue)
            if len(self._valid_queues) < 1000:
                self._valid_queues.add(queue)
        options.pop("task_status", None)  # tied to the job by the verb that stores it
        fields: dict[str, Any] = self._options(options, now) if options else {}
        title = fields.pop("title", title)
        if title is not None and not isinstance(title, str):
            raise ValueError(f"title must be a string, not {type(title).__name__}")
        if "timeout" in fields:
            if timeout is not None:
                raise ValueError("give the timeout either as timeout= or in rq_kwargs, not both")
            timeout = fields.pop("timeout")
        meta = fields.pop("meta", None)
        if meta is None:
            meta = {"title": title}
        else:
            meta.setdefault("title", title)
            meta = codec.to_jsonable(meta, "meta")
        tracing.carry(meta)
        job_id = fields.pop("id", None)
        run_at = fields.get("run_at")
        return Job(
            id=job_id or new_id(),
            queue=queue,
            func=path,
            task=task,
            payload=codec.encode_payload(args if args is not None else [], kwargs if kwargs is not None else {}),
            title=title,
            state=SCHEDULED if run_at is not None and run_at > now else QUEUED,
            created_at=now,
            max_attempts=fields.pop("max_attempts", self._default_attempts),
            timeout=self._default_timeout if timeout is None else _timeout(timeout, self._default_timeout_raw),
            meta=meta,
            **fields,
        )

    def _options(self, options: dict[str, Any], now: float) -> dict[str, Any]:
        """Job fields from enqueue's keyword options (validated)."""
        unknown = set(options) - _ENQUEUE_OPTIONS
        if unknown:
            raise TypeError(f"unknown enqueue option(s): {', '.join(sorted(unknown))}")
        fields: dict[str, Any] = {}
        rq_kwargs = dict(options.get("rq_kwargs") or {})
        if "timeout" in rq_kwargs:
            fields["timeout"] = rq_kwargs.pop("timeout")
        job_id = options.get("job_id") or rq_kwargs.pop("job_id", None)
        if job_id is not None:
            fields["id"] = check_job_id(job_id)
        meta = options.get("meta") or rq_kwargs.pop("meta", None)
        if meta is not None:
            if not isinstance(meta, dict):
                raise ValueError(f"meta must be a dict, not {type(meta).__name__}")
            fields["meta"] = dict(meta)
        if "description" in rq_kwargs:
            fields["title"] = rq_kwargs.pop("description")
        unsupported = set(rq_kwargs) - _IGNORED_RQ_KWARGS
        if unsupported:
            raise ValueError(f"rq_kwargs option(s) not supported by offload: {', '.join(sorted(unsupported))}")
        attempts = self._max_attempts(options)
        if attempts is not None:
            fields["max_attempts"] = attempts
        retry = options.get("retry")
        if isinstance(retry, dict):
            retry = RetryPolicy.from_dict(retry)
        if retry is not None:
            if not isinstance(retry, RetryPolicy):
                raise ValueError(f"retry must be a RetryPolicy or a dict, not {retry!r}")
            fields["retry"] = retry.to_dict()
        unique_key = options.get("unique_key")
        if unique_key is not None:
            if not isinstance(unique_key, str) or not 0 < len(unique_key) <= 500:
                raise ValueError("unique_key must be a non-empty string of at most 500 characters")
            fields["unique_key"] = unique_key
        if options.get("priority") is not None:
            fields["priority"] = check_priority(options["priority"])
        if options.get("limit_key") is not None:
            fields["limit_key"] = check_limit_key(options["limit_key"])
        run_at = _when(options.get("at"), options.get("delay"), now)
        if run_at is not None:
            fields["run_at"] = run_at
        return fields

    def _max_attempts(self, options: dict[str, Any]) -> int | None:
        if options.get("max_attempts") is not None and options.get("max_retries") is not None:
            raise ValueError("give either max_attempts or max_retries, not both")
        if options.get("max_retries") is not None:
            value = options["max_retries"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"max_retries must be an integer >= 0, not {value!r}")
            return value + 1
        value = options.get("max_attempts", None)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"max_attempts must be an integer >= 1, not {value!r}")
        return value

    def enqueue(
        self,
        fn: Callable[..., Any] | str,
        args: Any = None,
        kwargs: Any = None,
        title: str | None = None,
        queue: str = "default",
        timeout: float | None = None,
        *,
        connection: Any = None,
        **options: Any,
    ) -> Job:
        """Add a job: ``fn(*args, **kwargs)`` runs in a worker. Returns the Job (``duplicate`` is True when
        a pending job with the same id or ``unique_key`` already existed; that job is returned).

        ``connection``: the application's own database connection (psycopg 3, psycopg2, or an SQLAlchemy
        Connection or Session) in its open transaction, on the PostgreSQL store's database: the job is written
        in that transaction, so it exists (and wakes a worker) only once the transaction commits, and is gone
        if it rolls back. ``task_status=(entity_type, entity_id, task_type)`` makes the job that entity's status
        for that task type (see ``offload.taskstatus``). ``priority``: 0 (the default) to 9; within its queue
        a job runs after every waiting job of a lower number, and in enqueue order among equals."""
        key = _task_key(options)
        job = self.build_job(fn, args, kwargs, title, queue, timeout, **options)
        return self._store_one(job, key, connection)

    def _store_one(self, job: Job, key: taskstatus.TaskKey | None, connection: Any = None) -> Job:
        if self.config["offload.jobs.sync"]:
            return self._run_inline(job, key)
        if connection is not None:
            stored = self._enqueue_in(connection, [job], job.created_at)[0]
        else:
            with tracing.enqueue_span([job]):
                stored = self.store.enqueue(job, job.created_at)
        if key is not None:
            taskstatus.attach(self.store, key, stored)
        return stored

    def _enqueue_in(self, connection: Any, jobs: list[Job], now: float) -> list[Job]:
        """Store ``jobs`` inside the transaction of the application's ``connection`` (PostgreSQL only)."""
        enqueue_in = getattr(self.store, "enqueue_in_transaction", None)
        if enqueue_in is None:
            raise StoreError(
                f"enqueue with connection= needs the PostgreSQL store, in the application's own database; this "
                f"site's store is {self.store.safe_url}: leave connection= out, or use a postgresql:// store"
            )
        added: list[Job] = enqueue_in(connection, jobs, now)
        return added

    def enqueue_many(self, calls: Iterable[Any], *, connection: Any = None, **options: Any) -> list[Job]:
        """Add many jobs in one round trip. Each call is ``fn``, ``(fn, args)``, ``(fn, args, kwargs)`` or a
        dict of ``enqueue`` arguments; ``options`` apply to every call unless the dict says otherwise.
        ``connection``: all of them inside the application's transaction (see ``enqueue``)."""
        now = time.time()
        calls = calls if isinstance(calls, (list, tuple)) else list(calls)
        ids = iter(new_ids(len(calls)))
        jobs = []
        # Calls that differ only in their arguments (fn or tuple calls) share one job built and validated once
        # per function; each job is a copy of it with its own id, arguments and time. A fixed job id or meta
        # goes through build_job for every call instead, as dicts do.
        templates: dict[Any, Job] | None = {} if not options.keys() & _PER_CALL_OPTIONS else None
        # args and kwargs given as options are defaults for the calls that leave them out.
        shared = {k: v for k, v in options.items() if k not in ("fn", "args", "kwargs")}
        default_args, default_kwargs = options.get("args"), options.get("kwargs")
        keys: dict[int, taskstatus.TaskKey] = {}
        shared_key = _task_key(shared)
        for i, call in enumerate(calls):
            at = now + i * 1e-6
            if isinstance(call, dict):
                spec = {**options, **call}
                fn = spec.pop("fn", None)
                if fn is None:
                    raise ValueError(f"call {i} has no function")
                key = _task_key(spec)
                if key is not None:
                    keys[i] = key
                jobs.append(self.build_job(fn, now=at, **spec))
                continue
            if shared_key is not None:
                keys[i] = shared_key
            args, kwargs = default_args, default_kwargs
            if isinstance(call, tuple):
                if not 1 <= len(call) <= 3:
                    raise ValueError(f"call {i} is a tuple of {len(call)} items; give (fn,), (fn, args) or "
                                     "(fn, args, kwargs), or a dict of enqueue arguments")
                fn = call[0]
                if len(call) > 1:
                    args = call[1]
                if len(call) > 2:
                    kwargs = call[2]
            else:
                fn = call
            if fn is None:
                raise ValueError(f"call {i} has no function")
            template = None
            if templates is not None:
                try:
                    template = templates.get(fn)
                except TypeError:  # an unhashable callable: built in full, like a dict call
                    templates = None
            if template is None:
                job = self.build_job(fn, args, kwargs, now=at, **shared)
                if templates is not None:
                    templates[fn] = job
                jobs.append(job)
            else:
                jobs.append(_copy_for_call(template, next(ids), args, kwargs, at))
        if self.config["offload.jobs.sync"]:
            return [self._run_inline(job, keys.get(i)) for i, job in enumerate(jobs)]
        if connection is not None:
            stored = self._enqueue_in(connection, jobs, now)
        else:
            with tracing.enqueue_span(jobs):
                stored = self.store.enqueue_many(jobs, now)
        for i, key in keys.items():
            taskstatus.attach(self.store, key, stored[i])
        return stored

    def send_task(
        self,
        name: str,
        args: Any = None,
        kwargs: Any = None,
        task_id: str | None = None,
        countdown: float | None = None,
        eta: dt.datetime | float | None = None,
        *,
        connection: Any = None,
        **options: Any,
    ) -> Job:
        """Enqueue the task registered as ``name``; its registration gives the default queue, timeout and
        retry policy. ``task_id`` fixes the job id, ``countdown``/``eta`` delay it. ``connection``: inside the
        application's transaction (see ``enqueue``)."""
        registry.load_registry(self.config["offload.tasks.imports"])
        registered = registry.lookup(name)
        if registered.queue is not None:
            options.setdefault("queue", registered.queue)
        if registered.timeout is not None:
            options.setdefault("timeout", registered.timeout)
        if registered.max_retries is not None and "max_attempts" not in options:
            options.setdefault("max_retries", registered.max_retries)
        if registered.retry_policy is not None:
            options.setdefault("retry", registered.retry_policy)
        if task_id is not None:
            options["job_id"] = task_id
        if countdown is not None:
            options["delay"] = countdown
        if eta is not None:
            options["at"] = eta
        options.setdefault("title", name)
        key = _task_key(options)
        job = self.build_job(None, args, kwargs, task=name, **options)
        return self._store_one(job, key, connection)

    def _run_inline(self, job: Job, key: taskstatus.TaskKey | None = None) -> Job:
        """Synchronous mode: run ``job`` now in this process (see ``offload.inline``)."""
        return run_inline(self.store if key is not None else None, job, key)

    # -- task status ---------------------------------------------------------------------------------------
    def task_status(self, entity_type: str, entity_id: str, task_type: str) -> dict[str, Any] | None:
        """The latest job of ``task_type`` for the entity (``enqueue(..., task_status=(entity_type, entity_id,
        task_type))``): its id, state, error and when it last changed (``last_updated``), attempts; None if no
        such job was ever enqueued. See ``offload.taskstatus``."""
        return taskstatus.read(self.store, taskstatus.TaskKey(entity_type, entity_id, task_type))

    def task_statuses(self, entity_type: str, entity_id: str) -> list[dict[str, Any]]:
        """``task_status`` for every task type of one entity, by task type."""
        return taskstatus.read_entity(self.store, entity_type, entity_id)

    # -- inspecting and managing ---------------------------------------------------------------------------
    def get_job(self, job_id: str) -> Job:
        """The job with this id; ``JobNotFound`` if there is none on this site."""
        job = self.store.get(job_id) if isinstance(job_id, str) else None
        if job is None:
            raise JobNotFound(f'There is no job with ID "{_shown(job_id)}"')
        return job

    def get_queue(self, name: str = "default") -> Queue:
        return Queue(self, name)

    def queues(self) -> list[str]:
        """Names of this site's queues that hold jobs."""
        return sorted(self.store.counts())

    def list_jobs(
        self,
        queues: Sequence[str] | None = None,
        states: Sequence[str] | None = None,
        limit: int = 100,
        offset: int = 0,
        descending: bool = False,
    ) -> list[Job]:
        for queue in queues or ():
            check_queue_name(queue)
        for state in states or ():
            if state not in STATES:
                raise ValueError(f"unknown state {state!r}; states are {', '.join(STATES)}")
        if not (isinstance(limit, int) and 0 <= limit <= 100_000) or not (isinstance(offset, int) and offset >= 0):
            raise ValueError("limit must be between 0 and 100000 and offset >= 0")
        return self.store.list(list(queues) if queues else None, list(states) if states else None, limit, offset,
                               descending)

    def pause(self, queue: str) -> bool:
        """Pause ``queue`` in the store: every worker stops taking its jobs within a second (running ones go on;
        new ones can still be enqueued). False if it was paused already."""
        return self.store.pause(check_queue_name(queue), time.time())

    def resume(self, queue: str) -> bool:
        """Let workers take the jobs of a paused ``queue`` again. False if it was not paused."""
        return self.store.resume(check_queue_name(queue))

    def paused(self) -> dict[str, float]:
        """The paused queues: name -> when it was paused (seconds since the epoch)."""
        return self.store.paused()

    def limit(self, queue: str, concurrency: int | EllipsisType | None = ...,
              key_concurrency: int | EllipsisType | None = ...) -> None:
        """Let at most ``concurrency`` jobs of ``queue`` run at once across every worker and host, and at most
        ``key_concurrency`` of its jobs that share one ``limit_key`` (None: no such limit; left out: unchanged).
        Stored in the store and obeyed by the next claim of every worker; running jobs are not touched.
        ValueError (nothing written) for a bad queue name or a limit that is not a whole number of at least 1."""
        name = check_queue_name(queue)
        queue_limit = ... if concurrency is ... else check_concurrency(concurrency)
        key_limit = ... if key_concurrency is ... else check_concurrency(key_concurrency)
        if queue_limit is not ...:
            self.store.set_limit(name, queue_limit)
        if key_limit is not ...:
            self.store.set_key_limit(name, key_limit)

    def limits(self) -> dict[str, int]:
        """The concurrency limits of the site's queues: name -> limit."""
        return self.store.limits()

    def key_limits(self) -> dict[str, int]:
        """The per-key concurrency limits of the site's queues: name -> limit."""
        return self.store.key_limits()

    def cancel(self, job_id: str) -> Job:
        """Cancel a scheduled, queued or running job (a running job's process is stopped)."""
        before = self.get_job(job_id)
        if before.state in DONE_STATES:
            raise InvalidJobState(f"job {job_id} is already {before.state}")
        job = self.store.cancel(job_id, time.time())
        if job is None:
            raise JobNotFound(f'There is no job with ID "{_shown(job_id)}"')
        if job.state != CANCELED:
            raise InvalidJobState(f"job {job_id} is already {job.state}")
        return job

    def retry(self, job_id: str) -> Job:
        """Queue a failed or canceled job again (fresh attempts), or run a scheduled job now."""
        before = self.get_job(job_id)
        job = self.store.retry_now(job_id, time.time()) if before.state in (FAILED, CANCELED, SCHEDULED) else before
        if job is None:
            raise JobNotFound(f'There is no job with ID "{_shown(job_id)}"')
        if job.state != QUEUED or before.state == QUEUED:
            raise InvalidJobState(
                f"job {job_id} is {job.state}; only failed, canceled or scheduled jobs can be retried"
            )
        return job

    def delete(self, job_id: str) -> None:
        if not self.store.delete(job_id):
            raise JobNotFound(f'There is no job with ID "{_shown(job_id)}"')

    def clear(self, queues: Sequence[str] | None = None) -> int:
        """Delete the waiting (queued and scheduled) jobs of ``queues``; returns how many. Only ``None`` means every
        queue: an empty list names no queue and clears nothing."""
        if isinstance(queues, str):
            raise ValueError(f"queues must be a list of queue names, not the string {queues!r}")
        for queue in queues or ():
            check_queue_name(queue)
        if queues is not None and not queues:
            return 0
        return self.store.clear(None if queues is None else list(queues))

    def purge(self, older_than: float | None = None, progress: Callable[[int], object] | None = None,
              batch: int = 10_000) -> int:
        """Delete finished, failed and canceled jobs that ended more than ``older_than`` seconds ago
        (default ``offload.jobs.keep``), ``batch`` at a time; ``progress(n)`` is called after each batch."""
        keep = self.config["offload.jobs.keep"] if older_than is None else older_than
        if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not (math.isfinite(keep) and keep >= 0):
            raise ValueError(f"older_than must be a number of seconds >= 0, not {older_than!r}")
        cutoff = time.time() - keep
        total = 0
        while True:
            n = self.store.purge(cutoff, batch)
            total += n
            if progress is not None:
                progress(n)
            if n < batch:
                return total

    def workers(self, stale_after: float = 30.0) -> list[WorkerInfo]:
        return self.store.list_workers(time.time() - stale_after)

