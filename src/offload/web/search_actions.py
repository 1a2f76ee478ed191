"""``job_search`` (a page of jobs matching a filter, with the total) and ``job_bulk`` (retry, cancel or delete
every job a filter matches; admin). The filter is ``job_list``'s."""

from __future__ import annotations

from typing import Any

from offload import bulk
from offload.errors import SelectionChanged
from offload.jobs import check_job_id
from offload.web.actions import (
    ActionContext,
    Conflict,
    Integer,
    String,
    StringList,
    ValidationError,
    action,
    audit,
)
from offload.web.job_actions import FILTER_PARAMS, JOB_SCHEMA, QUEUES, STATE_CHOICES, job_dict, job_query, state_name


def _job_id(value: str) -> str:
    return check_job_id(value)


STATE = StringList(help="states: scheduled, queued, started, finished, failed, canceled, pending (the first three) "
                        "or all (the default)", item=state_name, default=["all"],
                   item_schema={"type": "string", "enum": list(STATE_CHOICES)})
ORDER = String(help="asc: oldest first; desc: newest first (default)", choices=("asc", "desc"), default="desc")


@action("job_search", role="read", params={
    "queues": QUEUES, "state": STATE, **FILTER_PARAMS, "order": ORDER,
    "limit": Integer(help="at most this many jobs (default 25)", minimum=0, maximum=1000, default=25),
    "offset": Integer(help="skip this many jobs first", minimum=0, maximum=10_000_000, default=0),
}, result={"type": "object", "properties": {"count": {"type": "integer"}, "exact": {"type": "boolean"},
                                            "results": {"type": "array", "items": JOB_SCHEMA}}})
def job_search(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Jobs matching a filter (every state unless ``state`` says), newest first: ``count`` is how many match in
    all (``exact`` is false where the engine examined only its newest 20,000 jobs), ``results`` one page."""
    try:
        found = ctx.offload.store.search(job_query(data), data["limit"], data["offset"])
    except ValueError as exc:
        raise ValidationError({"q": [str(exc)]}) from None
    return {"count": found.total, "exact": found.exact, "results": [job_dict(job) for job in found.jobs]}


@action("job_bulk", role="admin", params={
    "action": String(required=True, choices=bulk.BULK_ACTIONS, help="retry, cancel or delete"),
    "queues": QUEUES, "state": STATE, **FILTER_PARAMS,
    "ids": StringList(help="act on these job ids (a selection) instead of on the filter", item=_job_id,
                      item_schema={"type": "string", "maxLength": 200}),
    "expected": Integer(minimum=0, maximum=bulk.BULK_LIMIT,
                        help="the number of jobs the caller confirmed; if the filter matches another number, "
                             "nothing is done"),
}, result={"type": "object", "properties": {"action": {"type": "string"}, "matched": {"type": "integer"},
                                            "done": {"type": "integer"}, "skipped": {"type": "integer"}}})
def job_bulk(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Retry, cancel or delete every job a filter matches (at most 10,000), or the jobs ``ids`` names. Jobs whose
    state does not allow the action (and unknown ids) are skipped and counted. Returns how many matched, were
    acted on and were skipped."""
    if data["ids"] is not None:
        if len(data["ids"]) > bulk.BULK_LIMIT:
            raise ValidationError({"ids": [f"at most {bulk.BULK_LIMIT} ids"]})
        result = bulk.apply_ids(ctx.offload, data["action"], data["ids"])
        audit(ctx, "job_bulk", f"{data['action']} of {result.done} selected job(s)")
        return result.to_dict()
    try:
        query = job_query(data)
        result = bulk.apply(ctx.offload, data["action"], query, data["expected"])
    except SelectionChanged as exc:
        raise Conflict(str(exc)) from None
    except ValueError as exc:
        raise ValidationError({"filter": [str(exc)]}) from None
    audit(ctx, "job_bulk", f"{data['action']} of {result.done} job(s) matching {query}")
    return result.to_dict()
