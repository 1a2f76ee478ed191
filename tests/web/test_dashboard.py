"""The dashboard through Flask's test client (on SQLite and PostgreSQL), and mounted under a prefix."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from offload.web import create_app
from tests import jobfuncs
from tests.web.conftest import ADMIN, READ, Site

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(page: str) -> str:
    match = CSRF_RE.search(page)
    assert match, "no CSRF field on the page"
    return match.group(1)


def login(client: FlaskClient, token: str, prefix: str = "", target: str = "/") -> Any:
    page = client.get(f"{prefix}/login").text
    return client.post(f"{prefix}/login", data={"token": token, "csrf_token": csrf(page), "next": target})


def text(response: Any) -> str:
    return html.unescape(response.text)


@pytest.fixture
def admin(site: Site) -> Site:
    assert login(site.client, ADMIN).status_code == 302
    return site


# -- login and session -------------------------------------------------------------------------------------------
def test_pages_need_a_login_and_show_the_login_form(site: Site) -> None:
    for path in ("/", "/jobs", "/jobs/abc", "/jobs?state=failed"):
        response = site.client.get(path)
        assert response.status_code == 403, path
        assert 'name="token"' in response.text and 'type="password"' in response.text
    assert site.client.post("/jobs/abc/cancel").status_code == 403
    assert site.client.get("/static/offload.css").status_code == 200
    assert site.client.get("/static/offload.js").status_code == 200


def test_login_sets_an_httponly_samesite_cookie_without_the_token(site: Site) -> None:
    response = login(site.client, ADMIN, target="/jobs?state=failed")
    assert response.status_code == 302 and response.headers["Location"] == "/jobs?state=failed"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("offload_session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    data = site.app.session_interface.get_signing_serializer(site.app).loads(value)  # type: ignore[attr-defined]
    assert ADMIN not in str(data) and set(data) == {"offload_token", "offload_csrf", "_permanent"}
    assert site.client.get("/").status_code == 200


def test_bad_token_bad_csrf_and_foreign_redirects(site: Site) -> None:
    response = login(site.client, "not-a-token")
    assert response.status_code == 403 and "That token is not valid." in response.text
    response = site.client.post("/login", data={"token": ADMIN, "csrf_token": "forged"})
    assert response.status_code == 400 and site.client.get("/").status_code == 403
    for target in ("//evil.example/", "https://evil.example/", "\\\\evil"):
        response = login(site.app.test_client(), ADMIN, target=target)
        assert response.headers["Location"] == "/", target


def test_logout_ends_the_session(admin: Site) -> None:
    page = admin.client.get("/").text
    assert admin.client.post("/logout", data={"csrf_token": csrf(page)}).status_code == 302
    assert admin.client.get("/").status_code == 403


def test_removing_a_token_ends_its_sessions(site: Site) -> None:
    secret = "fixed-secret-for-this-test"
    first = create_app(site.offload, {"SECRET_KEY": secret, "TESTING": True}).test_client()
    login(first, READ)
    cookie = first.get_cookie("offload_session")
    assert cookie is not None and first.get("/").status_code == 200
    from offload import Offload

    without_read = Offload(store=site.url, site_id=site.site_id, api__tokens=f"{ADMIN}:admin")
    second = create_app(without_read, {"SECRET_KEY": secret, "TESTING": True}).test_client()
    second.set_cookie("offload_session", cookie.value)
    assert second.get("/").status_code == 403
    without_read.close()


def test_security_headers(admin: Site) -> None:
    response = admin.client.get("/")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


# -- pages -------------------------------------------------------------------------------------------------------
def test_overview_shows_queues_by_state(admin: Site) -> None:
    for _ in range(3):
        admin.offload.enqueue(jobfuncs.noop, queue="mail")
    admin.offload.cancel(admin.offload.enqueue(jobfuncs.noop, queue="reports").id)
    page = text(admin.client.get("/"))
    row = re.search(r'<tr data-queue="mail">(.*?)</tr>', page, re.S)
    assert row and re.search(r'data-state="queued">\s*<a href="/jobs\?queue=mail&state=queued">3</a>', row.group(1))
    assert re.search(r'data-queue="reports">.*?data-state="canceled">\s*<a [^>]*>1</a>', page, re.S)
    assert 'id="throughput"' in page and "data-series=" in page
    assert "There are no running workers." in page


def test_job_list_filters_and_pages(admin: Site) -> None:
    ids = [admin.offload.enqueue(jobfuncs.noop, title=f"job {i}", queue="bulk").id for i in range(30)]
    other = admin.offload.enqueue(jobfuncs.noop, title="elsewhere", queue="other")
    first = text(admin.client.get("/jobs?queue=bulk&state=queued"))
    shown = re.findall(r'data-job-id="([0-9a-f]+)"', first)
    assert shown == ids[::-1][:25] and other.id not in first
    assert "page 1 of 2 (30 jobs)" in first
    assert 'href="/jobs?queue=bulk&state=queued&page=2"' in first
    second = text(admin.client.get("/jobs?queue=bulk&state=queued&page=2"))
    assert re.findall(r'data-job-id="([0-9a-f]+)"', second) == ids[::-1][25:]
    assert re.findall(r'data-job-id="([0-9a-f]+)"', text(admin.client.get("/jobs?state=failed"))) == []
    assert admin.client.get("/jobs?queue=bad queue").status_code == 400
    assert admin.client.get("/jobs?state=bogus").status_code == 400
    assert admin.client.get("/jobs?page=zero").status_code == 400


def test_job_detail_shows_traceback_progress_and_arguments(admin: Site) -> None:
    failed = admin.offload.enqueue(jobfuncs.fail, ["the <disk> is on fire"], title="Doomed", max_attempts=1)
    counted = admin.offload.enqueue(jobfuncs.progress, [5], title="Counter")
    admin.run_worker()
    page = admin.client.get(f"/jobs/{failed.id}").text
    assert "the &lt;disk&gt; is on fire" in page and "<disk>" not in page  # escaped
    traceback = re.search(r'<pre class="traceback" id="job-traceback">(.*?)</pre>', page, re.S)
    assert traceback and "Traceback (most recent call last)" in traceback.group(1)
    assert "ValueError: the &lt;disk&gt; is on fire" in traceback.group(1)
    assert "1 of 1" in page and ">Retry</button>" in page and ">Cancel</button>" not in page
    page = text(admin.client.get(f"/jobs/{counted.id}"))
    assert '<progress id="job-progress" max="100" value="100.0">' in page and "5 of 5 steps" in page
    assert re.search(r'<pre class="json" id="job-args">\[\s*5\s*\]</pre>', page)
    assert '<pre class="json" id="job-result">"done"</pre>' in page
    assert admin.client.get("/jobs/no-such-job").status_code == 404


def test_retry_cancel_and_clear_need_csrf_and_change_state(admin: Site) -> None:
    failed = admin.offload.enqueue(jobfuncs.fail, max_attempts=1)
    admin.run_worker()
    waiting = admin.offload.enqueue(jobfuncs.noop, queue="slow")
    admin.offload.enqueue(jobfuncs.noop, queue="slow")

    assert admin.client.post(f"/jobs/{failed.id}/retry", data={}).status_code == 400
    assert admin.offload.get_job(failed.id).state == "failed"

    page = admin.client.get(f"/jobs/{failed.id}").text
    assert 'data-confirm="Queue job' in page
    response = admin.client.post(f"/jobs/{failed.id}/retry",
                                 data={"csrf_token": csrf(page), "next": f"/jobs/{failed.id}"})
    assert response.status_code == 302 and response.headers["Location"] == f"/jobs/{failed.id}"
    assert admin.offload.get_job(failed.id).state == "queued"
    assert f"Queued job {failed.id} again" in admin.client.get(f"/jobs/{failed.id}").text

    token = csrf(page)
    admin.client.post(f"/jobs/{waiting.id}/cancel", data={"csrf_token": token})
    assert admin.offload.get_job(waiting.id).state == "canceled"
    admin.client.post(f"/jobs/{waiting.id}/cancel", data={"csrf_token": token})
    assert f"job {waiting.id} is already canceled" in admin.client.get(f"/jobs/{waiting.id}").text

    admin.client.post("/queues/slow/clear", data={"csrf_token": token, "next": "/"})
    assert admin.offload.store.count(["slow"], ["queued"]) == 0


def test_read_role_sees_no_buttons_and_cannot_act(site: Site) -> None:
    login(site.client, READ)
    job = site.offload.enqueue(jobfuncs.noop, queue="mail")
    page = site.client.get(f"/jobs/{job.id}").text
    assert ">Cancel</button>" not in page and "Clear" not in site.client.get("/").text
    response = site.client.post(f"/jobs/{job.id}/cancel", data={"csrf_token": csrf(page)})
    assert response.status_code == 403 and "the read role may not call job_cancel" in response.text
    assert site.offload.get_job(job.id).state == "queued"


# -- mounted in a host application -------------------------------------------------------------------------------
def test_mounted_under_a_prefix_in_a_host_app(sqlite_site: Site) -> None:
    host = Flask("host")

    @host.route("/")
    def home() -> str:
        return "the host application"

    host.wsgi_app = DispatcherMiddleware(host.wsgi_app, {"/admin/jobs": sqlite_site.app})  # type: ignore[method-assign]
    client = host.test_client()
    assert client.get("/").text == "the host application"

    page = client.get("/admin/jobs/")
    assert page.status_code == 403
    assert 'action="/admin/jobs/login"' in page.text and 'href="/admin/jobs/static/offload.css"' in page.text
    assert client.get("/admin/jobs/static/offload.js").status_code == 200
    response = login(client, ADMIN, prefix="/admin/jobs", target="/jobs")
    assert response.headers["Location"] == "/admin/jobs/jobs"
    sqlite_site.offload.enqueue(jobfuncs.noop, queue="mail")
    overview = text(client.get("/admin/jobs/"))
    assert 'href="/admin/jobs/jobs?queue=mail"' in overview and 'href="/admin/jobs/jobs"' in overview

    api = client.get("/admin/jobs/api/3/action/job_list", headers={"Authorization": READ}).get_json()
    assert api["help"] == "http://localhost/admin/jobs/api/3/action/help_show?name=job_list"
    doc = client.get("/admin/jobs/api/3/openapi.json", headers={"Authorization": READ}).get_json()
    assert doc["servers"] == [{"url": "/admin/jobs"}]
    assert client.get("/admin/jobs/healthz").status_code == 200


def test_pause_and_resume_a_queue_from_the_overview(admin: Site) -> None:
    admin.offload.enqueue(jobfuncs.noop, queue="mail")
    page = admin.client.get("/").text
    assert 'action="/queues/mail/pause"' in page and 'class="paused"' not in page
    assert admin.client.post("/queues/mail/pause", data={}).status_code == 400  # no CSRF token: refused
    assert admin.offload.paused() == {}
    response = admin.client.post("/queues/mail/pause", data={"csrf_token": csrf(page), "next": "/"})
    assert response.status_code == 302 and set(admin.offload.paused()) == {"mail"}
    page = text(admin.client.get("/"))
    assert 'Paused queue "mail": workers take none of its jobs' in page
    assert re.search(r'<tr data-queue="mail">\s*<th><a [^>]*>mail</a> <span class="paused">paused</span>', page)
    assert 'action="/queues/mail/resume"' in page
    admin.client.post("/queues/mail/resume", data={"csrf_token": csrf(page), "next": "/"})
    assert admin.offload.paused() == {}


def test_read_role_cannot_pause(site: Site) -> None:
    login(site.client, READ)
    site.offload.enqueue(jobfuncs.noop, queue="mail")
    page = site.client.get("/").text
    assert ">Pause</button>" not in page
    response = site.client.post("/queues/mail/pause", data={"csrf_token": csrf(page)})
    assert response.status_code == 403 and site.offload.paused() == {}
