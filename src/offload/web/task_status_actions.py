"""Task status actions: ``task_status_show`` (the latest job of a task type for an entity: state, error, time) and
``task_status_list`` (every task type of an entity). Read role; see ``offload.taskstatus``. In CKAN they are
``offload_task_status_show`` / ``offload_task_status_list``, beside CKAN's own ``task_status_*`` actions."""

from __future__ import annotations

from typing import Any

from offload.web.actions import ActionContext, NotFound, String, ValidationError, action

_TEXT = r"[^\x00-\x1f\x7f]{1,200}"
_TEXT_HELP = "Must be 1-200 characters, without control characters"
ENTITY_TYPE = String(required=True, max_length=200, pattern=r"[^:\x00-\x1f\x7f]{1,200}",
                     pattern_help="Must be 1-200 characters, without ':' or control characters",
                     help="the kind of entity (resource, package, ...)")
ENTITY_ID = String(required=True, max_length=200, pattern=_TEXT, pattern_help=_TEXT_HELP, help="the entity's id")
TASK_TYPE = String(required=True, max_length=200, pattern=_TEXT, pattern_help=_TEXT_HELP,
                   help="the task type (archiver, qa, ...)")

STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The latest job of a task type for an entity (times are UTC seconds since the epoch). "
                   "state is the job's, or unknown once the job is gone without having been seen done.",
    "properties": {
        "entity_type": {"type": "string"},
        "entity_id": {"type": "string"},
        "task_type": {"type": "string"},
        "job_id": {"type": "string"},
        "state": {"type": "string"},
        "error": {"type": ["object", "null"]},
        "last_updated": {"type": "number"},
        "created_at": {"type": "number"},
        "attempts": {"type": "integer"},
        "max_attempts": {"type": "integer"},
        "queue": {"type": "string"},
        "title": {"type": ["string", "null"]},
    },
}


@action("task_status_show", role="read", params={"entity_type": ENTITY_TYPE, "entity_id": ENTITY_ID,
                                                 "task_type": TASK_TYPE}, result=STATUS_SCHEMA)
def task_status_show(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """The status of the latest job of ``task_type`` for an entity (enqueued with ``task_status=``): its job id,
    state, error, ``last_updated`` and attempts, read from the job itself."""
    try:
        status = ctx.offload.task_status(data["entity_type"], data["entity_id"], data["task_type"])
    except ValueError as exc:
        raise ValidationError({"task_status": [str(exc)]}) from None
    if status is None:
        raise NotFound(f"no {data['task_type']} job for {data['entity_type']} {data['entity_id']}")
    return status


@action("task_status_list", role="read", params={"entity_type": ENTITY_TYPE, "entity_id": ENTITY_ID},
        result={"type": "array", "items": STATUS_SCHEMA})
def task_status_list(ctx: ActionContext, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The status of every task type of an entity, by task type (empty when it has none)."""
    try:
        return ctx.offload.task_statuses(data["entity_type"], data["entity_id"])
    except ValueError as exc:
        raise ValidationError({"task_status": [str(exc)]}) from None
