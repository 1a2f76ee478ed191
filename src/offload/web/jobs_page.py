"""The dashboard's jobs list: search (id, text in title / function / task), queue, state, creation time range,
sort, pages with the total; and bulk retry, cancel or delete of everything the filter matches, behind a
confirmation that names the count (the action refuses if the filter matches another number by then)."""

from __future__ import annotations

import calendar
import math
import time
from collections.abc import Mapping
from typing import Any

from flask import Response, render_template, request, url_for
from werkzeug.wrappers.response import Response as BaseResponse

from offload.errors import InvalidQueueName
from offload.jobs import PENDING_STATES, SORT_FIELDS, STATES, JobQuery, check_job_id, check_queue_name
from offload.web.dashboard import PAGE_SIZE, back, bp, error_page, run_action
from offload.web.state import web_state

FILTER_FIELDS = ("id", "q", "args", "queue", "state", "from", "to", "sort", "order")
TIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d")
DONE = {"retry": "Queued {done} job(s) again", "cancel": "Canceled {done} job(s)", "delete": "Deleted {done} job(s)"}


def _utc(text: str, name: str) -> float:
    """``2026-12-07T20:10`` (the browser's datetime-local, read as UTC) as epoch seconds."""
    for fmt in TIME_FORMATS:
        try:
            return float(calendar.timegm(time.strptime(text, fmt)))
        except ValueError:
            continue
    raise ValueError(f"{name} must be a date and time like 2026-12-07T20:10 (UTC), not {text!r}")


def parse_filter(values: Mapping[str, str]) -> tuple[JobQuery, dict[str, str]]:
    """The search a form or query string describes, and its fields as given (for the form and links)."""
    given = {name: values.get(name, "").strip() for name in FILTER_FIELDS}
    if given["queue"]:
        check_queue_name(given["queue"])
    if given["id"]:
        check_job_id(given["id"])
    state = given["state"]
    if state and state not in (*STATES, "pending"):
        raise ValueError(f"unknown state {state!r}")
    states = PENDING_STATES if state == "pending" else ((state,) if state else None)
    if given["sort"] and given["sort"] not in SORT_FIELDS:
        raise ValueError(f"cannot sort by {given['sort']!r}")
    query = JobQuery(
        queues=(given["queue"],) if given["queue"] else None, states=tuple(states) if states else None,
        job_id=given["id"] or None, text=given["q"] or None, args=given["args"] or None,
        created_after=_utc(given["from"], "from") if given["from"] else None,
        created_before=_utc(given["to"], "to") if given["to"] else None,
        sort=given["sort"] or "created_at", descending=given["order"] != "asc",
    )
    return query, {name: value for name, value in given.items() if value}


def _action_data(query: JobQuery) -> dict[str, Any]:
    """``job_bulk``'s filter parameters for ``query``."""
    return {"queues": list(query.queues) if query.queues else None,
            "state": list(query.states) if query.states else ["all"],
            "id": query.job_id, "q": query.text, "args": query.args, "created_after": query.created_after,
            "created_before": query.created_before}


@bp.route("/jobs")
def jobs() -> Response | str:
    offload = web_state().offload
    try:
        query, given = parse_filter(request.args)
        page = int(request.args.get("page", "1"))
        if not 1 <= page <= 1_000_000:
            raise ValueError("page out of range")
    except (ValueError, InvalidQueueName) as exc:
        return error_page(400, f"Bad filter: {exc}")
    found = offload.store.search(query, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    pages = max(1, math.ceil(found.total / PAGE_SIZE))

    def page_url(number: int) -> str:
        values: dict[str, Any] = {**given, "page": number}
        return url_for(".jobs", **values)

    queue = given.get("queue", "")
    return render_template(
        "jobs.html", jobs=found.jobs, total=found.total, exact=found.exact, page=page, pages=pages,
        page_url=page_url, given=given, queue=queue, state=given.get("state", ""), states=STATES,
        sort_fields=SORT_FIELDS, all_queues=sorted(set(offload.store.counts()) | ({queue} if queue else set())),
        filtered=bool(set(given) - {"sort", "order"}),
    )


@bp.route("/jobs/bulk", methods=["POST"])
def bulk_action() -> Response | BaseResponse:
    try:
        query, _ = parse_filter(request.form)
        expected = int(request.form.get("expected", ""))
    except (ValueError, InvalidQueueName) as exc:
        return error_page(400, f"Bad filter: {exc}")
    action = request.form.get("action", "")
    message = DONE.get(action, "Done {done} job(s)")

    def done(result: dict[str, Any]) -> str:
        text = message.format(done=result["done"])
        return text + (f"; {result['skipped']} skipped (their state does not allow it)" if result["skipped"] else "")

    denied = run_action("job_bulk", {"action": action, **_action_data(query), "expected": expected}, done)
    return denied or back(url_for(".jobs"))


@bp.route("/jobs/bulk-selected", methods=["POST"])
def bulk_selected() -> Response | BaseResponse:
    ids = request.form.getlist("ids")
    if not ids:
        return error_page(400, "No jobs were selected.")
    action = request.form.get("action", "")
    message = DONE.get(action, "Done {done} job(s)")

    def done(result: dict[str, Any]) -> str:
        text = message.format(done=result["done"])
        return text + (f"; {result['skipped']} skipped (their state does not allow it)" if result["skipped"] else "")

    denied = run_action("job_bulk", {"action": action, "ids": ids}, done)
    return denied or back(url_for(".jobs"))
