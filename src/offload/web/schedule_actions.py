"""``schedule_run``: enqueue one run of a periodic schedule now, besides its slots (admin). ``schedule_list`` is
with the job actions."""

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
