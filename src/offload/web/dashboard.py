"""The dashboard: server-side pages over the same actions the API offers.

Login exchanges an API token for a session cookie (Flask's signed cookie, HttpOnly, SameSite=Lax) that holds
the token's SHA-256 digest and a CSRF token, never the token itself; removing a token from the configuration
ends its sessions at their next request. Every form that changes something is a POST carrying the CSRF
token, and the page script asks for confirmation first. Links are built with ``url_for``, so the dashboard
works when the app is mounted under a prefix of a host application.
"""

from __future__ import annotations

import hmac
import json
import math
import secrets
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, session, url_for
from markupsafe import Markup
from werkzeug.wrappers.response import Response as BaseResponse

from offload.errors import JobNotFound, StoreError
from offload.jobs import CANCELED, FAILED, PENDING_STATES, SCHEDULED, STATES, Job, check_job_id
from offload.web import metrics
from offload.web.actions import ActionContext, ActionError, NotAuthorized, get_action
from offload.web.auth import digest
from offload.web.state import web_state

bp = Blueprint("offload_dashboard", __name__)

PAGE_SIZE = 25
MAX_WORKER_JOBS_SHOWN = 10
RETRYABLE_STATES = (FAILED, CANCELED, SCHEDULED)
SESSION_DIGEST = "offload_token"
SESSION_CSRF = "offload_csrf"


# -- session and CSRF --------------------------------------------------------------------------------------------
def sign_in(token: str) -> None:
    """Make this request's session one of ``token``'s holder (an embedding site that authenticated its user
    itself, as CKAN does for its sysadmins, signs them in with a token it configured)."""
    session[SESSION_DIGEST] = digest(token)


def session_role() -> str | None:
    return web_state().tokens.role_for_digest(session.get(SESSION_DIGEST))


def csrf_token() -> str:
    token = session.get(SESSION_CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[SESSION_CSRF] = token
    return token


def _csrf_ok() -> bool:
    expected = session.get(SESSION_CSRF)
    given = request.form.get("csrf_token", "")
    return isinstance(expected, str) and hmac.compare_digest(expected.encode(), given.encode())


def _local_target(target: str | None, default: str) -> str:
    """A redirect target inside this app: a path relative to the script root, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return request.script_root + target


def _here() -> str:
    """The current page as a path relative to the script root (for ``next``)."""
    query = request.query_string.decode("latin-1")
    return request.path + (f"?{query}" if query else "")


def _login_page(status: int, error: str | None = None, target: str | None = None) -> Response:
    if target is None:
        target = _here() if request.method == "GET" else "/"
    html = render_template("login.html", error=error, next=target)
    return Response(html, status=status, mimetype="text/html")


@bp.before_request
def require_login() -> Response | None:
    if request.endpoint in ("offload_dashboard.login",):
        return None
    if session_role() is None:
        return _login_page(403)
    if request.method == "POST" and not _csrf_ok():
        return error_page(400, "The form has expired (CSRF token missing or wrong); reload the page and try again.")
    return None


@bp.after_request
def security_headers(response: Response) -> Response:
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.errorhandler(StoreError)
def store_failed(exc: StoreError) -> Response:
    return error_page(503, "The job store cannot be reached; this page will retry.")


def error_page(status: int, message: str) -> Response:
    html = render_template("error.html", status=status, message=message)
    return Response(html, status=status, mimetype="text/html")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | BaseResponse:
    target = request.values.get("next") or "/"
    if request.method == "GET":
        if session_role() is not None:
            return redirect(_local_target(target, url_for(".overview")))
        return _login_page(200, target=target)
    if not _csrf_ok():
        return _login_page(400, "The login form has expired; please try again.", target)
    token = request.form.get("token", "").strip()
    if web_state().tokens.role_for(token) is None:
        return _login_page(403, "That token is not valid.", target)
    session.clear()
    session.permanent = True
    sign_in(token)
    csrf_token()
    return redirect(_local_target(target, url_for(".overview")))


@bp.route("/logout", methods=["POST"])
def logout() -> BaseResponse:
    session.clear()
    return redirect(url_for(".login"))


# -- pages -------------------------------------------------------------------------------------------------------
@bp.route("/")
def overview() -> str:
    offload = web_state().offload
    counts = offload.store.counts()
    paused = offload.paused()
    by_queue = {name: {s: counts.get(name, {}).get(s, 0) for s in STATES} for name in sorted({*counts, *paused})}
    queues = [{"name": name, "counts": row, "total": sum(row.values()), "paused": name in paused}
              for name, row in by_queue.items()]
    totals = {s: sum(row[s] for row in by_queue.values()) for s in STATES}
    now = time.time()
    range_name = request.args.get("range", "hour")
    if range_name not in metrics.RANGES:
        range_name = "hour"
    chart_queue = request.args.get("queue", "")
    chart_queues = [chart_queue] if chart_queue in counts else sorted(counts)
    series = metrics.history_chart(offload, chart_queues, range_name, now)
    workers = []
    for info in offload.workers():
        running = [job for job in (offload.store.get(jid) for jid in info.jobs[:MAX_WORKER_JOBS_SHOWN]) if job]
        workers.append({"info": info, "running": running, "more": max(0, len(info.jobs) - len(running))})
    return render_template(
        "overview.html", queues=queues, totals=totals, workers=workers, series=json.dumps(series),
        finished=sum(int(row["finished"]) for row in series), failed=sum(int(row["failed"]) for row in series),
        range_name=range_name, ranges=metrics.RANGES, chart_queue=chart_queue if chart_queue in counts else "",
    )


@bp.route("/jobs/<job_id>")
def job(job_id: str) -> Response | str:
    found = _find_job(job_id)
    if found is None:
        return error_page(404, f'There is no job with ID "{job_id}"')
    data = found.to_dict()
    percent = None
    if found.progress and isinstance(found.progress.get("total"), (int, float)) and found.progress["total"]:
        done = found.progress.get("done") or 0
        if isinstance(done, (int, float)):
            percent = max(0.0, min(100.0, 100.0 * done / found.progress["total"]))
    return render_template(
        "job.html", job=found, data=data, percent=percent,
        args=json.dumps(data["args"], indent=2, ensure_ascii=False),
        kwargs=json.dumps(data["kwargs"], indent=2, ensure_ascii=False),
        result=json.dumps(data["result"], indent=2, ensure_ascii=False),
        meta=json.dumps(data["meta"], indent=2, ensure_ascii=False),
        can_cancel=found.state in PENDING_STATES, can_retry=found.state in RETRYABLE_STATES,
    )


def _find_job(job_id: str) -> Job | None:
    try:
        return web_state().offload.get_job(check_job_id(job_id))
    except (ValueError, JobNotFound):
        return None


# -- actions -----------------------------------------------------------------------------------------------------
def run_action(name: str, data: dict[str, Any], done: str | Callable[[Any], str]) -> Response | None:
    """Run an action for the logged-in user; flash the outcome (``done``, or ``done(result)``). A role that may
    not do it gets a 403 page."""
    role = session_role()
    assert role is not None
    try:
        caller = (f"{web_state().tokens.describe_digest(session.get(SESSION_DIGEST))} from "
                  f"{request.remote_addr or 'an unknown address'} (dashboard)")
        result = get_action(name)(ActionContext(web_state().offload, role, caller), data)
    except NotAuthorized as exc:
        return error_page(403, exc.message)
    except ActionError as exc:
        flash(exc.detail or exc.message, "error")
        return None
    flash(done if isinstance(done, str) else done(result), "ok")
    return None


def back(default: str) -> BaseResponse:
    return redirect(_local_target(request.form.get("next"), default))


@bp.route("/jobs/<job_id>/cancel", methods=["POST"])
def cancel(job_id: str) -> Response | BaseResponse:
    denied = run_action("job_cancel", {"id": job_id}, f"Canceled job {job_id}")
    return denied or back(url_for(".job", job_id=job_id))


@bp.route("/jobs/<job_id>/retry", methods=["POST"])
def retry(job_id: str) -> Response | BaseResponse:
    denied = run_action("job_retry", {"id": job_id}, f"Queued job {job_id} again")
    return denied or back(url_for(".job", job_id=job_id))


@bp.route("/queues/<queue>/clear", methods=["POST"])
def clear(queue: str) -> Response | BaseResponse:
    denied = run_action("job_clear", {"queues": [queue]}, f'Cleared the waiting jobs of queue "{queue}"')
    return denied or back(url_for(".overview"))


@bp.route("/queues/<queue>/pause", methods=["POST"])
def pause(queue: str) -> Response | BaseResponse:
    denied = run_action("queue_pause", {"queue": queue}, f'Paused queue "{queue}": workers take none of its jobs')
    return denied or back(url_for(".overview"))


@bp.route("/queues/<queue>/resume", methods=["POST"])
def resume(queue: str) -> Response | BaseResponse:
    denied = run_action("queue_resume", {"queue": queue}, f'Resumed queue "{queue}"')
    return denied or back(url_for(".overview"))


# -- template helpers --------------------------------------------------------------------------------------------
@bp.app_template_filter("when")
def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


@bp.app_template_filter("ago")
def ago(ts: float | None) -> Markup:
    """``3 s ago`` (or ``in 5 min``) in a ``<time>`` whose title is the absolute time."""
    if ts is None:
        return Markup("-")
    delta = time.time() - ts
    text = f"{seconds(abs(delta))} ago" if delta >= 0 else f"in {seconds(-delta)}"
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    return Markup('<time datetime="{}" title="{}">{}</time>').format(iso, when(ts), text)


@bp.app_template_filter("seconds")
def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "> 1 h"  # above the run-time histogram's last bound
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    if value < 172800:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"


@bp.app_context_processor
def template_globals() -> dict[str, Any]:
    return {
        "csrf_token": csrf_token,
        "role": session_role,
        "refresh_seconds": web_state().refresh_seconds,
        "here": _here,
        "all_states": STATES,
    }
