"""The dashboard's operator pages beside the overview and the jobs list: queues (counts, latency, clear),
workers, scheduled and retrying jobs (run now), failed jobs with their errors, periodic schedules (run now) and
webhooks with their recent deliveries. Routes join the dashboard's blueprint, so its login, CSRF check and
security headers guard them too; mutations go through the same actions as the API, so a read-only session that
forges a form gets the action's 403."""

from __future__ import annotations

import math
import time
from typing import Any

from flask import Response, render_template, request, url_for
from werkzeug.wrappers.response import Response as BaseResponse

from offload.events import webhooks
from offload.jobs import FAILED, SCHEDULED, STATES, Job
from offload.web import metrics
from offload.web.actions import ActionContext, get_action
from offload.web.dashboard import MAX_WORKER_JOBS_SHOWN, PAGE_SIZE, back, bp, error_page, run_action, session_role
from offload.web.state import web_state

#: Scheduled jobs read for the Scheduled and Retrying pages (sorted by run time in Python).
SCHEDULED_SHOWN = 500
DELIVERIES_SHOWN = 10


def _page_number() -> int | None:
    try:
        page = int(request.args.get("page", "1"))
    except ValueError:
        return None
    return page if 1 <= page <= 1_000_000 else None


@bp.route("/queues")
def queues() -> str:
    offload = web_state().offload
    now = time.time()
    counts = offload.store.counts()
    since = offload.store.waiting_since(now)
    workers = offload.workers()
    stopped = set(offload.paused())
    limits, key_limits = offload.limits(), offload.key_limits()
    rows = []
    for name in sorted(set(counts) | set(since) | stopped | set(limits) | set(key_limits)):
        row = {s: counts.get(name, {}).get(s, 0) for s in STATES}
        rows.append({
            "name": name, "counts": row, "total": sum(row.values()),
            "latency": now - since[name] if name in since else None,
            "workers": sum(1 for w in workers if name in w.queues),
            "waiting": row["queued"] + row["scheduled"],
        })
        rows[-1]["unserved"] = rows[-1]["latency"] is not None and not rows[-1]["workers"]
        rows[-1]["hour"] = metrics.last_hour(offload, name, now)
        rows[-1]["paused"] = name in stopped
        rows[-1]["limit"], rows[-1]["key_limit"] = limits.get(name), key_limits.get(name)
    return render_template("queues.html", queues=rows)


@bp.route("/workers")
def workers() -> str:
    offload = web_state().offload
    rows = []
    for info in offload.workers():
        running = [job for job in (offload.store.get(jid) for jid in info.jobs[:MAX_WORKER_JOBS_SHOWN]) if job]
        rows.append({"info": info, "running": running, "more": max(0, len(info.jobs) - len(running))})
    return render_template("workers.html", workers=rows, now=time.time())


def _scheduled(retrying: bool) -> list[Job]:
    found = web_state().offload.store.list(None, [SCHEDULED], SCHEDULED_SHOWN, 0)
    chosen = [job for job in found if bool(job.errors) == retrying]
    return sorted(chosen, key=lambda job: (job.run_at or 0.0, job.created_at))


@bp.route("/scheduled")
def scheduled() -> str:
    return render_template("scheduled.html", jobs=_scheduled(False), retrying=False, limit=SCHEDULED_SHOWN)


@bp.route("/retrying")
def retrying() -> str:
    return render_template("scheduled.html", jobs=_scheduled(True), retrying=True, limit=SCHEDULED_SHOWN)


@bp.route("/failed")
def failed() -> Response | str:
    store = web_state().offload.store
    page = _page_number()
    if page is None:
        return error_page(400, "Bad filter: page must be a number from 1")
    total = store.count(None, [FAILED])
    pages = max(1, math.ceil(total / PAGE_SIZE))
    found = store.list(None, [FAILED], PAGE_SIZE, (page - 1) * PAGE_SIZE, descending=True)
    return render_template("failed.html", jobs=found, page=page, pages=pages, total=total)


@bp.route("/schedules")
def schedules() -> str:
    role = session_role()
    assert role is not None
    offload = web_state().offload
    rows = get_action("schedule_list")(ActionContext(offload, role), {})
    for row in rows:
        last = offload.store.get(row["last_job_id"]) if row["last_job_id"] else None
        row["last_state"] = last.state if last else None
    return render_template("schedules.html", schedules=rows)


@bp.route("/schedules/<name>/run", methods=["POST"])
def schedule_run(name: str) -> Response | BaseResponse:
    denied = run_action("schedule_run", {"name": name}, f'Enqueued a run of schedule "{name}"')
    return denied or back(url_for(".schedules"))


@bp.route("/schedules/<name>/disable", methods=["POST"])
def schedule_disable(name: str) -> Response | BaseResponse:
    denied = run_action("schedule_disable", {"name": name}, f'Disabled schedule "{name}"')
    return denied or back(url_for(".schedules"))


@bp.route("/schedules/<name>/enable", methods=["POST"])
def schedule_enable(name: str) -> Response | BaseResponse:
    denied = run_action("schedule_enable", {"name": name}, f'Enabled schedule "{name}": it runs from its next slot')
    return denied or back(url_for(".schedules"))


@bp.route("/webhooks")
def webhook_list() -> str:
    offload = web_state().offload
    admin = session_role() == "admin"
    rows = []
    for record in webhooks.list_all(offload):
        view = webhooks.public_view(offload, record)
        if not admin:
            view["url"] = webhooks.safe_url(view["url"])
        deliveries = webhooks.deliveries(offload, record["id"], DELIVERIES_SHOWN)
        for delivery in deliveries:
            job = offload.store.get(delivery["job_id"]) if delivery.get("job_id") else None
            delivery["job_state"] = job.state if job else None
        rows.append({"hook": view, "deliveries": deliveries})
    return render_template("webhooks.html", hooks=rows)


@bp.route("/webhooks/<webhook_id>/test", methods=["POST"])
def webhook_test(webhook_id: str) -> Response | BaseResponse:
    denied = run_action("webhook_test", {"id": webhook_id}, f"Queued a test event for webhook {webhook_id}")
    return denied or back(url_for(".webhook_list"))


def page_links() -> list[tuple[str, str]]:
    """The header's links: (endpoint, label)."""
    return [(".overview", "Overview"), (".queues", "Queues"), (".jobs", "Jobs"), (".workers", "Workers"),
            (".scheduled", "Scheduled"), (".retrying", "Retrying"), (".failed", "Failed"),
            (".schedules", "Periodic"), (".webhook_list", "Webhooks")]


@bp.app_context_processor
def page_globals() -> dict[str, Any]:
    return {"page_links": page_links}
