"""Per-entity task status: the latest job of one task type for one entity, with its state, error and time.

CKAN's ``task_status`` table served this role for the archiver and QA extensions (``entity_type``,
``entity_id``, ``task_type`` -> ``state``, ``error``, ``last_updated``), written by hand by every task. Here a job
is tied to its entity when it is enqueued (``enqueue(..., task_status=("resource", res_id, "archiver"))``) and
the status is read from the job itself, so it follows the job through every state change (started, retried,
finished, failed, canceled) without the task writing anything.

The design, on the store contract (every engine, no verb of its own):

- a record of kind ``task_status:<entity_type>:<entity_id>``, key ``<task_type>``, names the latest job and keeps
  a snapshot of its status (written at enqueue, and again whenever a reader sees the job done);
- reading fetches that job: a job that is still stored answers for itself; once it is gone (deleted, or purged
  after ``offload.jobs.keep``) the snapshot answers: its last known done state, or ``unknown`` if the job was
  never seen done;
- in synchronous mode (``offload.jobs.sync``) the job is not stored: the snapshot of how it ended is.

Enqueueing for a key that already names a job replaces it: the status is the newest job's (by creation time;
of two producers racing within the same instant, the last writer wins).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from offload.jobs import DONE_STATES, FINISHED, QUEUED, SCHEDULED, STARTED, Job

if TYPE_CHECKING:
    from offload.stores import Store

KIND_PREFIX = "task_status:"
MAX_PART = 200
UNKNOWN = "unknown"


class TaskKey(tuple[str, str, str]):
    """``(entity_type, entity_id, task_type)``, validated: non-empty printable text of at most 200 characters
    each, and no ``:`` in ``entity_type``."""

    __slots__ = ()

    def __new__(cls, entity_type: str, entity_id: str, task_type: str) -> TaskKey:
        for name, value in (("entity_type", entity_type), ("entity_id", entity_id), ("task_type", task_type)):
            if not isinstance(value, str) or not value or len(value) > MAX_PART or not value.isprintable():
                raise ValueError(f"task status {name} must be printable text of 1-{MAX_PART} characters, "
                                 f"not {value!r}")
        if ":" in entity_type:
            raise ValueError(f"task status entity_type must not contain ':' ({entity_type!r})")
        return super().__new__(cls, (entity_type, entity_id, task_type))

    @property
    def entity_type(self) -> str:
        return self[0]

    @property
    def entity_id(self) -> str:
        return self[1]

    @property
    def task_type(self) -> str:
        return self[2]

    @property
    def kind(self) -> str:
        return entity_kind(self[0], self[1])


def entity_kind(entity_type: str, entity_id: str) -> str:
    return f"{KIND_PREFIX}{entity_type}:{entity_id}"


def task_key(value: Any) -> TaskKey:
    """A ``TaskKey`` from what ``enqueue(task_status=...)`` accepts: a 3-tuple/list or a dict with
    ``entity_type``, ``entity_id`` and ``task_type``."""
    if isinstance(value, TaskKey):
        return value
    if isinstance(value, dict):
        unknown = set(value) - {"entity_type", "entity_id", "task_type"}
        if unknown:
            raise ValueError(f"task_status has unknown key(s): {', '.join(sorted(map(str, unknown)))}")
        missing = [k for k in ("entity_type", "entity_id", "task_type") if k not in value]
        if missing:
            raise ValueError(f"task_status needs {', '.join(missing)}")
        return TaskKey(value["entity_type"], value["entity_id"], value["task_type"])
    if isinstance(value, (tuple, list)) and len(value) == 3:
        return TaskKey(*value)
    raise ValueError("task_status must be (entity_type, entity_id, task_type) or a dict of those three, "
                     f"not {value!r}")


def _changed_at(job: Job) -> float:
    """When the job last changed state."""
    if job.state in DONE_STATES and job.ended_at is not None:
        return job.ended_at
    if job.state == STARTED and job.started_at is not None:
        return job.started_at
    if job.state == QUEUED and job.enqueued_at is not None:
        return job.enqueued_at
    if job.state == SCHEDULED and job.errors:
        return float(job.errors[-1].get("at") or job.ended_at or job.created_at)
    return job.created_at


def snapshot(key: TaskKey, job: Job) -> dict[str, Any]:
    """The status of ``key`` as ``job`` gives it (what readers get, and what the record keeps)."""
    return {
        "entity_type": key.entity_type,
        "entity_id": key.entity_id,
        "task_type": key.task_type,
        "job_id": job.id,
        "state": job.state,
        # A job waiting for its next attempt shows why the last one failed; a finished job has no error.
        "error": None if job.state == FINISHED else job.error,
        "last_updated": _changed_at(job),
        "created_at": job.created_at,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "queue": job.queue,
        "title": job.title,
    }


def attach(store: Store, key: TaskKey, job: Job) -> None:
    """Make ``job`` the latest job of ``key`` (unless the record already names a newer one)."""
    current = store.get_record(key.kind, key.task_type)
    if current is not None and current.get("job_id") != job.id and float(current.get("created_at") or 0) > \
            job.created_at:
        return
    store.put_record(key.kind, key.task_type, snapshot(key, job))


def read(store: Store, key: TaskKey) -> dict[str, Any] | None:
    """The status of ``key``, or None when no job was ever enqueued for it."""
    record = store.get_record(key.kind, key.task_type)
    if record is None:
        return None
    job = store.get(str(record.get("job_id")))
    if job is not None:
        status = snapshot(key, job)
        if job.state in DONE_STATES and (record.get("state"), record.get("last_updated")) != (
                status["state"], status["last_updated"]):
            # Keep how it ended, for after the job itself is purged.
            store.put_record(key.kind, key.task_type, status)
        return status
    if record.get("state") in DONE_STATES:
        return dict(record)
    return {**record, "state": UNKNOWN, "error": {
        "type": "JobGone", "reason": "gone",
        "message": f"job {record.get('job_id')} is no longer stored (deleted, or purged after offload.jobs.keep) "
                   f"and was last seen {record.get('state')}"}}


def read_entity(store: Store, entity_type: str, entity_id: str) -> list[dict[str, Any]]:
    """The status of every task type of one entity, by task type."""
    TaskKey(entity_type, entity_id, "-")  # validates the two parts
    found = []
    for task_type, _ in store.list_records(entity_kind(entity_type, entity_id)):
        status = read(store, TaskKey(entity_type, entity_id, task_type))
        if status is not None:
            found.append(status)
    return found
