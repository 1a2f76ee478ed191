"""``queue_pause`` and ``queue_resume`` (admin): workers take no job of a paused queue until it is resumed
(``offload.paused``)."""

from __future__ import annotations

from typing import Any

from offload import paused
from offload.errors import InvalidQueueName
from offload.jobs import check_queue_name
from offload.web.actions import ActionContext, String, ValidationError, action, audit

QUEUE = String(required=True, max_length=100, help="the queue name")


def _queue(data: dict[str, Any]) -> str:
    try:
        return check_queue_name(data["queue"])
    except InvalidQueueName as exc:
        raise ValidationError({"queue": [str(exc)]}) from None


@action("queue_pause", role="admin", params={"queue": QUEUE},
        result={"type": "object", "properties": {"queue": {"type": "string"}, "paused": {"type": "boolean"}}})
def queue_pause(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Pause a queue: workers take none of its jobs (within 2 seconds) until it is resumed."""
    queue = _queue(data)
    paused.pause(ctx.offload.store, queue, ctx.caller)
    audit(ctx, "queue_pause", f"queue {queue}")
    return {"queue": queue, "paused": True}


@action("queue_resume", role="admin", params={"queue": QUEUE},
        result={"type": "object", "properties": {"queue": {"type": "string"}, "paused": {"type": "boolean"}}})
def queue_resume(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Resume a paused queue (a queue that is not paused is left as it is)."""
    queue = _queue(data)
    paused.resume(ctx.offload.store, queue)
    return {"queue": queue, "paused": False}
