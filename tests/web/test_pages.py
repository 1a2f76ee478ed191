"""The operator pages (queues, workers, scheduled, retrying, failed, periodic schedules, webhooks) through Flask's
test client on SQLite and PostgreSQL: each is guarded, shows what it is for, and its mutations are refused to a
read-only session even when the form is forged."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from offload import schedule
from tests import jobfuncs
from tests.web.conftest import ADMIN, ENGINES, READ, Site, wait_until
from tests.web.pages_data import Seeded, deliver_twice, make_pages_site, seed
from tests.web.test_dashboard import csrf, login, text

MUTATIONS = re.compile(r"<button[^>]*>(Retry|Run now|Clear|Cancel|Pause|Resume|Enable|Disable|Redeliver|"
                       r"Send a test event)</button>")
PAGES = ("/queues", "/workers", "/scheduled", "/retrying", "/failed", "/schedules", "/webhooks")


@pytest.fixture(params=ENGINES)
def seeded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Site, Seeded]]:
    site = make_pages_site(request.param, tmp_path)
    data = seed(site)
    yield site, data
    site.stop_all()


def _row(page: str, attr: str, value: str) -> str:
    match = re.search(rf'<tr {attr}="{re.escape(value)}">(.*?)</tr>', page, re.S)
    assert match, f"no row {attr}={value}"
    return match.group(1)


def test_every_page_needs_a_login_and_is_linked_from_the_header(seeded: tuple[Site, Seeded]) -> None:
    site, _ = seeded
    for path in PAGES:
        response = site.client.get(path)
        assert response.status_code == 403 and 'name="token"' in response.text, path
    assert site.client.post("/schedules/nightly-report/run").status_code == 403
    login(site.client, ADMIN)
    header = site.client.get("/").text.split("</header>")[0]
    for path in PAGES:
        assert f'href="{path}"' in header, path
        assert site.client.get(path).status_code == 200, path


def test_queues_show_counts_latency_and_unserved_queues(seeded: tuple[Site, Seeded]) -> None:
    site, _ = seeded
    login(site.client, ADMIN)
    page = text(site.client.get("/queues"))
    mail = _row(page, "data-queue", "mail")
    assert re.search(r'data-state="queued">\s*<a[^>]*>3</a>', mail)
    assert re.search(r'data-state="scheduled">\s*<a[^>]*>1</a>', mail)
    latency = re.search(r'class="num latency"[^>]*>([^<]+)<', mail)
    assert latency and latency.group(1).endswith(("ms", " s", "min")), mail
    assert "unserved" in mail and "Clear" in mail
    default = _row(page, "data-queue", "default")
    assert re.search(r'class="num latency"[^>]*>-<', default), "nothing waits in default"
    assert re.search(r'class="num hour-finished">1<', default) and re.search(r'class="num hour-failed">2<', default)
    assert "unserved" not in default
    # A worker that serves mail (busy with a long job of an earlier queue, so the mail jobs stay waiting).
    busy = site.offload.enqueue(jobfuncs.sleep, [120], queue="hold")
    site.start("worker", "--concurrency", "1", "hold", "mail")
    wait_until(lambda: site.offload.get_job(busy.id).state == "started")
    mail = _row(text(site.client.get("/queues")), "data-queue", "mail")
    assert "unserved" not in mail and re.search(r'class="num workers"[^>]*>1<', mail)
    site.offload.cancel(busy.id)


def test_pause_and_resume_from_the_queues_page(seeded: tuple[Site, Seeded]) -> None:
    site, _ = seeded
    login(site.client, ADMIN)
    page = text(site.client.get("/queues"))
    response = site.client.post("/queues/mail/pause", data={"csrf_token": csrf(page)})
    assert response.status_code == 302 and set(site.offload.paused()) == {"mail"}
    page = text(site.client.get("/queues"))
    mail = _row(page, "data-queue", "mail")
    assert 'class="badge state-scheduled paused">paused<' in mail and ">Resume</button>" in mail
    assert 'Paused queue "mail"' in page
    assert site.client.post("/queues/mail/resume", data={"csrf_token": csrf(page)}).status_code == 302
    assert site.offload.paused() == {} and schedule.disabled(site.offload) == set()
    assert ">Pause</button>" in _row(text(site.client.get("/queues")), "data-queue", "mail")


def test_queues_show_their_concurrency_limits(seeded: tuple[Site, Seeded]) -> None:
    site, _ = seeded
    login(site.client, ADMIN)
    assert re.search(r'class="num limit">-<', _row(text(site.client.get("/queues")), "data-queue", "mail"))
    site.offload.limit("mail", concurrency=2, key_concurrency=1)
    site.offload.limit("imports", concurrency=4)  # a queue that holds no job yet is listed for its limit
    page = text(site.client.get("/queues"))
    assert re.search(r'class="num limit">2; 1 per key<', _row(page, "data-queue", "mail"))
    assert re.search(r'class="num limit">4<', _row(page, "data-queue", "imports"))


def test_workers_page_lists_host_pid_queues_and_heartbeat(seeded: tuple[Site, Seeded]) -> None:
    site, _ = seeded
    login(site.client, ADMIN)
    assert "There are no running workers." in site.client.get("/workers").text
    job = site.offload.enqueue(jobfuncs.progress_then_sleep, [3, 10, 120], title="Rebuild index", queue="longrun")
    proc = site.start("worker", "--name", "pages-worker", "--concurrency", "2", "longrun", "reports")
    wait_until(lambda: (site.offload.get_job(job.id).progress or {}).get("done") == 3)
    wait_until(lambda: "Rebuild index" in site.client.get("/workers").text)
    row = _row(text(site.client.get("/workers")), "data-worker", "pages-worker")
    for shown in (socket.gethostname(), f">{proc.pid}<", "longrun, reports", ">2<", "Rebuild index", "3/10",
                  " ago"):
        assert shown in row, shown
    site.offload.cancel(job.id)


def test_scheduled_and_retrying_are_told_apart_with_run_times(seeded: tuple[Site, Seeded]) -> None:
    site, data = seeded
    login(site.client, ADMIN)
    scheduled = text(site.client.get("/scheduled"))
    retrying = text(site.client.get("/retrying"))
    assert data.scheduled.id in scheduled and data.retrying.id not in scheduled
    assert data.retrying.id in retrying and data.scheduled.id not in retrying
    run_at = site.offload.get_job(data.scheduled.id).run_at
    assert time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(run_at)) in _row(scheduled, "data-job-id",
                                                                                 data.scheduled.id)
    assert "<strong>ValueError</strong>: mirror is down" in _row(retrying, "data-job-id", data.retrying.id)
    # Run now: the scheduled job is queued at once.
    response = site.client.post(f"/jobs/{data.scheduled.id}/retry",
                                data={"csrf_token": csrf(scheduled), "next": "/scheduled"})
    assert response.status_code == 302 and response.headers["Location"] == "/scheduled"
    assert site.offload.get_job(data.scheduled.id).state == "queued"


def test_failed_list_shows_the_error(seeded: tuple[Site, Seeded]) -> None:
    site, data = seeded
    login(site.client, ADMIN)
    row = _row(text(site.client.get("/failed")), "data-job-id", data.failed.id)
    assert '<strong class="error-type">ValueError</strong>' in row
    assert "catalogue.csv is missing" in row and "Retry" in row
    assert site.client.get("/failed?page=0").status_code == 400


def test_periodic_schedules_show_next_run_and_run_now(seeded: tuple[Site, Seeded]) -> None:
    site, _ = seeded
    login(site.client, ADMIN)
    page = text(site.client.get("/schedules"))
    row = _row(page, "data-schedule", "nightly-report")
    assert "cron 0 3 * * *" in row and "tests.jobfuncs:noop" in row and "never" in row
    assert re.search(r'class="next-run"><time datetime="\d{4}-\d\d-\d\dT03:00:00Z" title="[^"]+">in [\d.]+ '
                     r'(min|h)</time> <small>\d{4}-\d\d-\d\d 03:00:00 UTC</small>', row), row
    response = site.client.post("/schedules/nightly-report/run", data={"csrf_token": csrf(page)})
    assert response.status_code == 302
    runs = site.offload.list_jobs(["reports"], ["queued"])
    assert [job.title for job in runs] == ["nightly-report (periodic)"]
    assert "Enqueued a run of schedule" in site.client.get("/schedules").text
    response = site.client.post("/schedules/no-such/run", data={"csrf_token": csrf(page)}, follow_redirects=True)
    assert "there is no periodic schedule named" in text(response)
    # Disable and enable.
    assert site.client.post("/schedules/nightly-report/disable", data={"csrf_token": csrf(page)}).status_code == 302
    assert schedule.disabled(site.offload) == {"nightly-report"}
    row = _row(text(site.client.get("/schedules")), "data-schedule", "nightly-report")
    assert ">disabled</span>" in row and ">Enable</button>" in row
    assert site.result("schedule_list")[0]["enabled"] is False
    assert site.client.post("/schedules/nightly-report/enable", data={"csrf_token": csrf(page)}).status_code == 302
    assert schedule.disabled(site.offload) == set()
    assert ">Disable</button>" in _row(text(site.client.get("/schedules")), "data-schedule", "nightly-report")
    status, body = site.call("schedule_disable", {"name": "no-such"})
    assert status == 404 and "no periodic schedule" in str(body["error"])


def test_webhooks_page_lists_endpoints_and_hides_paths_from_readers(seeded: tuple[Site, Seeded]) -> None:
    site, data = seeded
    deliver_twice(site)
    login(site.client, ADMIN)
    page = text(site.client.get("/webhooks"))
    assert data.webhook_id in page and "https://hooks.example.org/secret-path/abc" in page
    assert "catalogue sync" in page and "No deliveries yet." in page
    local = page[page.index("search index"):]
    rows = re.findall(r'<td class="num">(\d+|-)</td>\s*<td class="num">(\d+ ms|-)</td>', local)
    assert [status for status, _ in rows] == ["200", "503"], "newest first, with status and latency"
    assert all(latency.endswith(" ms") for _, latency in rows)
    # The refused delivery's job failed: it can be delivered again; a test event can be sent.
    failed_jobs = site.offload.list_jobs(["webhooks"], ["failed"])
    assert len(failed_jobs) == 1 and local.count(">Redeliver</button>") == 1
    response = site.client.post(f"/jobs/{failed_jobs[0].id}/retry", data={"csrf_token": csrf(page)})
    assert response.status_code == 302 and site.offload.get_job(failed_jobs[0].id).state == "queued"
    hook_id = re.search(r'data-webhook="([0-9a-f]+)">\s*<h2><code>[0-9a-f]+</code> http://127', page).group(1)
    response = site.client.post(f"/webhooks/{hook_id}/test", data={"csrf_token": csrf(page)})
    assert response.status_code == 302 and site.offload.store.count(["webhooks"], ["queued"]) == 2
    reader = site.app.test_client()
    login(reader, READ)
    page = text(reader.get("/webhooks"))
    assert data.webhook_id in page and "secret-path" not in page


def test_read_only_sessions_see_no_controls_and_forged_forms_are_refused(seeded: tuple[Site, Seeded]) -> None:
    site, data = seeded
    login(site.client, READ)
    for path in PAGES:
        page = site.client.get(path).text
        assert not re.search(MUTATIONS, page), path
        assert "data-confirm" not in page, path
    token = csrf(site.client.get("/queues").text)
    forged = [(f"/jobs/{data.scheduled.id}/retry", data.scheduled.id, "scheduled"),
              (f"/jobs/{data.failed.id}/retry", data.failed.id, "failed"),
              ("/queues/mail/clear", data.waiting[0].id, "queued"),
              ("/queues/mail/pause", None, None),
              ("/schedules/nightly-report/disable", None, None),
              ("/schedules/nightly-report/run", None, None)]
    for url, job_id, state in forged:
        response = site.client.post(url, data={"csrf_token": token})
        assert response.status_code == 403 and "may not call" in response.text, url
        if job_id:
            assert site.offload.get_job(job_id).state == state, url
    assert site.offload.list_jobs(["reports"], ["queued"]) == []
    assert site.offload.paused() == {} and schedule.disabled(site.offload) == set()
