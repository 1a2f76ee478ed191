"""The built-in actions: CKAN's ``job_*`` actions (same names, parameters and result shapes) and offload's own.

CKAN's ``job_list`` lists queued jobs only; here ``state`` widens it (default ``queued``, as in CKAN).
"""

from __future__ import annotations

import time
from typing import Any

from offload import registry, schedule
from offload.errors import (
    InvalidJobState,
    InvalidQueueName,
    JobNotFound,
    OffloadError,
    SerializationError,
    StoreError,
    TaskNotFound,
)
from offload.jobs import PENDING_STATES, SORT_FIELDS, STATES, Job, JobQuery, check_job_id, check_queue_name
from offload.web.actions import (
    ActionContext,
    Boolean,
    Conflict,
    Integer,
    JSONValue,
    NotFound,
    Number,
    String,
    StringList,
    ValidationError,
    action,
    audit,
    get_action,
    registered_actions,
)

DEFAULT_JOB_LIST_LIMIT = 200  # CKAN's default
MAX_JOB_LIST_LIMIT = 1000
STATE_CHOICES = (*STATES, "pending", "all")
TASK_NAME_PATTERN = r"[A-Za-z_][\w.:-]{0,199}"
JOB_ID_PATTERN = r"[A-Za-z0-9_.:-]{1,200}"


def _queue(name: str) -> str:
    try:
        return check_queue_name(name)
    except InvalidQueueName as exc:
        raise ValueError(str(exc)) from None


def state_name(name: str) -> str:
    if name not in STATE_CHOICES:
        raise ValueError(f"Unknown state {name!r}: use one of {', '.join(STATE_CHOICES)}")
    return name


QUEUES = StringList(help="queue names (default: every queue of the site)", item=_queue,
                    item_schema={"type": "string", "pattern": r"^[A-Za-z0-9_.\-]{1,100}$"})
JOB_ID = String(required=True, max_length=200, help="the job id")

JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A job: CKAN's id, title, created (UTC, %Y-%m-%dT%H:%M:%S) and queue, then offload's fields "
                   "(times are UTC seconds since the epoch).",
    "properties": {
        "id": {"type": "string"},
        "title": {"type": ["string", "null"]},
        "created": {"type": "string"},
        "queue": {"type": "string"},
        "state": {"type": "string", "enum": list(STATES)},
        "func": {"type": ["string", "null"]},
        "task": {"type": ["string", "null"]},
        "args": {},
        "kwargs": {},
        "attempts": {"type": "integer"},
        "max_attempts": {"type": "integer"},
        "created_at": {"type": "number"},
        "started_at": {"type": ["number", "null"]},
        "ended_at": {"type": ["number", "null"]},
        "result": {},
        "error": {"type": ["object", "null"]},
        "progress": {"type": ["object", "null"]},
        "priority": {"type": "integer", "minimum": 0, "maximum": 9},
    },
}


def job_dict(job: Job) -> dict[str, Any]:
    """CKAN's ``dictize_job`` fields followed by offload's own (``Job.to_dict``)."""
    ckan = {"id": job.id, "title": job.title, "created": job.created.strftime("%Y-%m-%dT%H:%M:%S"),
            "queue": job.queue}
    return {**ckan, **job.to_dict()}


def _job(ctx: ActionContext, job_id: str) -> Job:
    # An id that could never have been stored is simply not found (and never reaches the store).
    try:
        check_job_id(job_id)
    except ValueError:
        raise NotFound(f'There is no job with ID "{job_id}"') from None
    try:
        return ctx.offload.get_job(job_id)
    except JobNotFound as exc:
        raise NotFound(str(exc)) from None


def _states(requested: list[str]) -> list[str] | None:
    if "all" in requested:
        return None
    states = [s for name in requested for s in (PENDING_STATES if name == "pending" else (name,))]
    return list(dict.fromkeys(states))


#: The search criteria of ``job_list``, ``job_search`` and ``job_bulk``, beside ``queues`` and ``state``.
FILTER_PARAMS = {
    "id": String(max_length=200, help="a job id (exact)"),
    "q": String(max_length=200, help="text in the title, function path or task name (any case)"),
    "args": String(max_length=200, help='text in the arguments as stored, JSON (any case), e.g. "user_id": 42'),
    "created_after": Number(maximum=1e11, help="created at or after this time (UTC seconds since the epoch)"),
    "created_before": Number(maximum=1e11, help="created before this time (UTC seconds since the epoch)"),
    "sort": String(choices=SORT_FIELDS, default="created_at", help="the time to order by (default created_at)"),
}


def job_query(data: dict[str, Any], default_states: list[str] | None = None) -> JobQuery:
    """The search an action's validated parameters describe."""
    states = _states(data["state"]) if data.get("state") is not None else default_states
    return JobQuery(queues=tuple(data["queues"]) if data["queues"] else None,
                    states=tuple(states) if states is not None else None,
                    job_id=data.get("id") or None, text=data.get("q") or None, args=data.get("args") or None,
                    created_after=data.get("created_after"), created_before=data.get("created_before"),
                    sort=data.get("sort") or "created_at", descending=data.get("order") == "desc")


@action("job_list", role="read", params={
    "queues": QUEUES,
    "state": StringList(help="states to list: scheduled, queued, started, finished, failed, canceled, or pending "
                             "(the first three) or all", item=state_name, default=["queued"],
                        item_schema={"type": "string", "enum": list(STATE_CHOICES)}),
    "limit": Integer(help=f"at most this many jobs (default {DEFAULT_JOB_LIST_LIMIT})", minimum=0,
                     maximum=MAX_JOB_LIST_LIMIT, default=DEFAULT_JOB_LIST_LIMIT),
    "offset": Integer(help="skip this many jobs first", minimum=0, maximum=10_000_000, default=0),
    "ids_only": Boolean(help="return job ids only"),
    "order": String(help="asc: oldest first (default); desc: newest first", choices=("asc", "desc"),
                    default="asc"),
    **FILTER_PARAMS,
}, result={"type": "array", "items": {"oneOf": [JOB_SCHEMA, {"type": "string"}]}})
def job_list(ctx: ActionContext, data: dict[str, Any]) -> list[Any]:
    """List jobs, oldest first: by default the queued jobs of every queue (as CKAN's job_list does).

    ``queues`` restricts the queues, ``state`` the states (``pending`` = scheduled, queued and started;
    ``all`` = every state), ``id``, ``q`` (text in the title, function or task), ``created_after`` and
    ``created_before`` narrow the list, ``sort`` and ``order`` order it, ``limit``/``offset`` page through it,
    ``ids_only`` returns ids only. ``job_search`` also returns the total."""
    try:
        query = job_query(data)
    except ValueError as exc:
        raise ValidationError({"q": [str(exc)]}) from None
    jobs = ctx.offload.store.search(query, data["limit"], data["offset"]).jobs
    if data["ids_only"]:
        return [job.id for job in jobs]
    return [job_dict(job) for job in jobs]


@action("job_show", role="read", params={"id": JOB_ID}, result=JOB_SCHEMA)
def job_show(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Show one job: CKAN's fields (id, title, created, queue) plus state, attempts, times, arguments,
    result, error (with traceback) and progress."""
    return job_dict(_job(ctx, data["id"]))


@action("job_cancel", role="admin", params={"id": JOB_ID}, result=JOB_SCHEMA)
def job_cancel(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Cancel a scheduled, queued or running job (a running job's process is stopped). Returns the job."""
    before = _job(ctx, data["id"])
    try:
        job = ctx.offload.cancel(data["id"])
    except JobNotFound as exc:
        raise NotFound(str(exc)) from None
    except InvalidJobState as exc:
        raise Conflict(str(exc)) from None
    audit(ctx, "job_cancel", f"canceled job {job.describe()}, which was {before.state}")
    return job_dict(job)


@action("job_retry", role="admin", params={"id": JOB_ID}, result=JOB_SCHEMA)
def job_retry(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Queue a failed or canceled job again with fresh attempts, or run a scheduled job now. Returns the job."""
    _job(ctx, data["id"])
    try:
        return job_dict(ctx.offload.retry(data["id"]))
    except JobNotFound as exc:
        raise NotFound(str(exc)) from None
    except InvalidJobState as exc:
        raise Conflict(str(exc)) from None


@action("job_clear", role="admin", params={
    "queues": StringList(help="queue names; leave the parameter out to clear every queue", item=_queue,
                         item_schema=QUEUES.item_schema, blank_is_default=False),
}, result={"type": "array", "items": {"type": "string"}})
def job_clear(ctx: ActionContext, data: dict[str, Any]) -> list[str]:
    """Delete the waiting (queued and scheduled) jobs of ``queues``, or of every queue when the request names
    none (as CKAN does; an empty list, an unknown parameter or a queue that holds no job is refused, and nothing
    is deleted). Returns the names of the queues cleared, as CKAN does."""
    existing = ctx.offload.queues()
    if data["queues"] is None:
        names = existing
    else:
        names = list(dict.fromkeys(data["queues"]))
        unknown = [name for name in names if name not in existing]
        if unknown:
            raise ValidationError({"queues": [f"There is no queue named {name!r} (no job of this site is in it)"
                                              for name in unknown]})
    if names:
        count = ctx.offload.clear(names)
        audit(ctx, "job_clear", f"deleted {count} waiting job(s) of queue(s) {', '.join(map(repr, names))}")
    return names


@action("job_enqueue", role="admin", params={
    "task": String(required=True, max_length=200, pattern=TASK_NAME_PATTERN,
                   pattern_help="Must be a task name such as ext.echo", help="registered task name"),
    "args": JSONValue(kind="array", help="positional arguments (a JSON array)"),
    "kwargs": JSONValue(kind="object", help="keyword arguments (a JSON object)"),
    "queue": String(max_length=100, pattern=r"[A-Za-z0-9_.-]{1,100}",
                    pattern_help="Must be 1-100 letters, digits, '_', '-' or '.'",
                    help="queue (default: the task's queue, else default)"),
    "countdown": Number(minimum=0, maximum=366 * 86400.0, help="run after this many seconds"),
    "task_id": String(max_length=200, pattern=JOB_ID_PATTERN,
                      pattern_help="Must be 1-200 letters, digits, '_', '-', '.' or ':'",
                      help="the job id (default: a random one); a pending job with this id is not added twice"),
    "title": String(max_length=500, help="title (default: the task name)"),
    "priority": Integer(minimum=0, maximum=9, help="0 (the default, first) to 9 (last) within its queue"),
}, result=JOB_SCHEMA)
def job_enqueue(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Enqueue a registered task by name (``send_task``). Only tasks registered in the API process (through
    ``offload.tasks.imports`` or the ``offload.tasks`` entry points) can be enqueued; the API never imports
    an arbitrary function path. The result has ``duplicate: true`` when a pending job with ``task_id``
    already existed (nothing was added)."""
    options: dict[str, Any] = {}
    if data["queue"] is not None:
        options["queue"] = data["queue"]
    if data["title"] is not None:
        options["title"] = data["title"]
    if data["priority"] is not None:
        options["priority"] = data["priority"]
    try:
        registry.lookup(data["task"])
        job = ctx.offload.send_task(data["task"], data["args"] or [], data["kwargs"] or {}, task_id=data["task_id"],
                                    countdown=data["countdown"], **options)
    except TaskNotFound as exc:
        raise ValidationError({"task": [str(exc)]}) from None
    except SerializationError as exc:
        raise ValidationError({"args": [str(exc)]}) from None
    except StoreError:
        raise
    except (OffloadError, ValueError, TypeError) as exc:
        raise ValidationError({"task": [str(exc)]}) from None
    return {**job_dict(job), "duplicate": job.duplicate}


@action("queue_list", role="read", result={"type": "array", "items": {"type": "object", "properties": {
    "name": {"type": "string"}, "counts": {"type": "object"}, "total": {"type": "integer"},
    "paused": {"type": "boolean"}, "paused_at": {"type": ["number", "null"]},
    "concurrency_limit": {"type": ["integer", "null"]}, "key_concurrency_limit": {"type": ["integer", "null"]}}}})
def queue_list(ctx: ActionContext, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The site's queues that hold jobs, are paused or are limited, with the number of jobs in each state,
    whether (since when) the queue is paused and its concurrency limit (null: none)."""
    counts = ctx.offload.store.counts()
    paused = ctx.offload.paused()
    limits = ctx.offload.limits()
    key_limits = ctx.offload.key_limits()
    return [{"name": name, "counts": {state: counts.get(name, {}).get(state, 0) for state in STATES},
             "total": sum(counts.get(name, {}).values()), "paused": name in paused, "paused_at": paused.get(name),
             "concurrency_limit": limits.get(name), "key_concurrency_limit": key_limits.get(name)}
            for name in sorted({*counts, *paused, *limits, *key_limits})]


QUEUE = String(required=True, max_length=100, pattern=r"[A-Za-z0-9_.-]{1,100}",
               pattern_help="Must be 1-100 letters, digits, '_', '-' or '.'", help="the queue name")
QUEUE_STATE: dict[str, Any] = {"type": "object", "properties": {
    "name": {"type": "string"}, "paused": {"type": "boolean"}, "changed": {"type": "boolean"}}}


@action("queue_pause", role="admin", params={"queue": QUEUE}, result=QUEUE_STATE)
def queue_pause(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Pause a queue: every worker stops taking its jobs within a second (running jobs finish) until
    ``queue_resume``; jobs can still be enqueued into it. ``changed`` is false when it was paused already."""
    changed = ctx.offload.pause(data["queue"])
    if changed:
        audit(ctx, "queue_pause", f"paused queue {data['queue']!r}")
    return {"name": data["queue"], "paused": True, "changed": changed}


@action("queue_resume", role="admin", params={"queue": QUEUE}, result=QUEUE_STATE)
def queue_resume(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Resume a paused queue: workers take its jobs again. ``changed`` is false when it was not paused."""
    changed = ctx.offload.resume(data["queue"])
    if changed:
        audit(ctx, "queue_resume", f"resumed queue {data['queue']!r}")
    return {"name": data["queue"], "paused": False, "changed": changed}


@action("queue_limit", role="admin", params={
    "queue": QUEUE,
    "concurrency": Integer(minimum=1, help="run at most this many jobs of the queue at once (omitted: no limit)"),
    "key_concurrency": Integer(minimum=1, help="run at most this many jobs of the queue with one limit_key at once "
                                               "(omitted: no limit)"),
}, result={"type": "object", "properties": {"name": {"type": "string"},
                                            "concurrency": {"type": ["integer", "null"]},
                                            "key_concurrency": {"type": ["integer", "null"]}}})
def queue_limit(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Set a queue's limits to those given: how many of its jobs run at once across every worker and host
    (``concurrency``), and how many of those sharing one ``limit_key`` (``key_concurrency``); an omitted one is
    removed. Obeyed by every worker's next claim; running jobs are not touched."""
    concurrency, key_concurrency = data.get("concurrency"), data.get("key_concurrency")
    ctx.offload.limit(data["queue"], concurrency, key_concurrency)
    audit(ctx, "queue_limit", f"set the concurrency limit of queue {data['queue']!r} to {concurrency}"
          + (f", per key {key_concurrency}" if key_concurrency is not None else ""))
    return {"name": data["queue"], "concurrency": concurrency, "key_concurrency": key_concurrency}


@action("worker_list", role="read", params={
    "stale_after": Number(minimum=1, maximum=86400, default=30.0,
                          help="leave out workers not seen for this many seconds (default 30)"),
}, result={"type": "array", "items": {"type": "object"}})
def worker_list(ctx: ActionContext, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Running workers: id, host, pid, queues, concurrency, the ids of the jobs they run, counters."""
    return [w.to_dict() for w in ctx.offload.workers(stale_after=data["stale_after"])]


@action("schedule_list", role="read", result={"type": "array", "items": {"type": "object"}})
def schedule_list(ctx: ActionContext, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Periodic jobs (declared in imported task modules and in the ini file) with their last and next run, and
    whether they are enabled."""
    found = schedule.all_schedules(ctx.offload)
    runs = ctx.offload.store.schedule_runs()
    off = schedule.disabled(ctx.offload)
    now = time.time()
    rows = []
    for name in sorted(found):
        entry = found[name]
        last = runs.get(name)
        rows.append({**entry.to_dict(), "spec": entry.spec, "last_run": last.last_slot if last else None,
                     "last_job_id": last.job_id if last else None, "next_run": entry.next_slot(now),
                     "enabled": name not in off})
    return rows


@action("help_show", role="read", params={"name": String(required=True, max_length=100, help="an action name")},
        result={"type": "string"})
def help_show(ctx: ActionContext, data: dict[str, Any]) -> str:
    """The help text of an action (as CKAN's help_show)."""
    try:
        return get_action(data["name"]).help
    except KeyError:
        raise NotFound(f"Action name not known: {data['name']}") from None


@action("action_list", role="read", result={"type": "array", "items": {"type": "string"}})
def action_list(ctx: ActionContext, data: dict[str, Any]) -> list[str]:
    """The names of every action this API offers."""
    return list(registered_actions())
