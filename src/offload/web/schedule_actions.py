"""``schedule_run`` (enqueue one run of a periodic schedule now, besides its slots), ``schedule_disable`` and
``schedule_enable`` (admin). ``schedule_list`` is with the job actions."""

from __future__ import annotations

from typing import Any

from offload import schedule
from offload.web.actions import ActionContext, NotFound, String, action, audit
from offload.web.job_actions import JOB_SCHEMA, job_dict


@action("schedule_run", role="admin", params={
    "name": String(required=True, max_length=100, help="the schedule's name"),
}, result=JOB_SCHEMA)
def schedule_run(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Enqueue one run of a periodic schedule now (its slots go on as before). Returns the job."""
    try:
        job = schedule.run_now(ctx.offload, data["name"])
    except KeyError:
        raise NotFound(f"there is no periodic schedule named {data['name']!r}") from None
    audit(ctx, "schedule_run", f"schedule {data['name']} run now as job {job.id}")
    return job_dict(job)


@action("schedule_disable", role="admin", params={
    "name": String(required=True, max_length=100, help="the schedule's name"),
}, result={"type": "object", "properties": {"name": {"type": "string"}, "enabled": {"type": "boolean"}}})
def schedule_disable(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Stop a periodic schedule enqueueing until it is enabled again."""
    _known(ctx, data["name"])
    schedule.disable(ctx.offload, data["name"], ctx.caller)
    audit(ctx, "schedule_disable", f"schedule {data['name']}")
    return {"name": data["name"], "enabled": False}


@action("schedule_enable", role="admin", params={
    "name": String(required=True, max_length=100, help="the schedule's name"),
}, result={"type": "object", "properties": {"name": {"type": "string"}, "enabled": {"type": "boolean"}}})
def schedule_enable(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Enable a disabled periodic schedule: it runs from its next slot (missed slots are not caught up)."""
    _known(ctx, data["name"])
    schedule.enable(ctx.offload, data["name"])
    return {"name": data["name"], "enabled": True}


def _known(ctx: ActionContext, name: str) -> None:
    if name not in schedule.all_schedules(ctx.offload):
        raise NotFound(f"there is no periodic schedule named {name!r}")
