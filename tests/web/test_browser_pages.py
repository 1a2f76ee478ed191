"""Every dashboard page in headless Chromium at a desktop width (1400 px) and a phone's (390 px): the page lays
out without horizontal scroll (``document.documentElement.scrollWidth`` within the viewport; wide tables scroll
inside their cards), the header with "Log out" fits, run-now works from the browser, and a read-only session
sees no mutation controls. Screenshots go to ``test-artifacts/dashboard/pages/``; with
``OFFLOAD_DOCS_SCREENSHOTS=1`` the desktop ones are also written to ``docs/img/`` for docs/dashboard.md.

SQLite only: the pages read the store through the same verbs on every engine, which test_pages.py covers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests import jobfuncs
from tests.conftest import service_missing
from tests.web.conftest import ADMIN, PAGE_WAIT_MS, READ, ROOT, Site, browser_missing, start_server, wait_until
from tests.web.pages_data import Seeded, make_pages_site, seed
from tests.web.test_browser import ARTIFACTS, confirm_click

DOCS_IMG = ROOT / "docs" / "img"
PAGES = [("/", "Overview"), ("/queues", "Queues"), ("/jobs", "Jobs"), ("/workers", "Workers"),
         ("/scheduled", "Scheduled"), ("/retrying", "Retrying"), ("/failed", "Failed"),
         ("/schedules", "Periodic schedules"), ("/webhooks", "Webhooks")]


@pytest.fixture(scope="module")
def served_pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Seeded, str]]:
    reason = browser_missing()
    if reason:
        service_missing("Chromium", reason)
    tmp = tmp_path_factory.mktemp("pages")
    site = make_pages_site("sqlite", tmp)
    data = seed(site, deliveries=True)
    # A real worker with a job running (and reporting progress) for the workers page.
    running = site.offload.enqueue(jobfuncs.progress_then_sleep, [3, 10, 600], title="Rebuild search index",
                                   queue="longrun")
    site.start("worker", "--name", "app-host.4242.worker", "--concurrency", "2", "longrun")
    wait_until(lambda: (site.offload.get_job(running.id).progress or {}).get("done") == 3)
    wait_until(lambda: any(running.id in w.jobs for w in site.offload.workers()))
    _, base = start_server(site, env={"OFFLOAD_CONFIG": str(tmp / "offload.ini")})
    yield site, data, base
    site.stop_all()


def _open(browser: Any, base: str, width: int, token: str) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.set_default_timeout(PAGE_WAIT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.errors = errors
    tab.goto(base + "/login")
    tab.fill("#token", token)
    tab.click("button[type=submit]")
    tab.wait_for_selector("h1:has-text('Overview')")
    return tab


def _check_layout(tab: Any, width: int, path: str) -> None:
    scroll_width = tab.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{path} at {width} px lays out {scroll_width} px wide"
    logout = tab.locator("header button:has-text('Log out')").bounding_box()
    header = tab.locator("header.top").bounding_box()
    assert logout and header, path
    assert logout["x"] >= 0 and logout["x"] + logout["width"] <= width, f"Log out outside the viewport on {path}"
    assert header["y"] <= logout["y"] and logout["y"] + logout["height"] <= header["y"] + header["height"], (
        f"Log out outside the header on {path}")


@pytest.mark.parametrize("width", [1400, 390])
def test_every_page_fits_its_width(served_pages: tuple[Site, Seeded, str], browser: Any, width: int) -> None:
    _, data, base = served_pages
    tab = _open(browser, base, width, ADMIN)
    shots = ARTIFACTS / "pages"
    shots.mkdir(parents=True, exist_ok=True)
    for path, heading in [*PAGES, (f"/jobs/{data.failed.id}", "Import catalogue")]:
        tab.goto(base + path)
        tab.wait_for_selector(f"h1:has-text('{heading}')")
        _check_layout(tab, width, path)
        name = (path.strip("/").replace("/", "-") or "overview")
        if path.startswith("/jobs/"):
            name = "job"
        tab.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
        if os.environ.get("OFFLOAD_DOCS_SCREENSHOTS") and (width == 1400 or name in ("overview", "jobs")):
            DOCS_IMG.mkdir(parents=True, exist_ok=True)
            suffix = "" if width == 1400 else "-phone"
            tab.screenshot(path=str(DOCS_IMG / f"{name}{suffix}.png"), full_page=width != 1400)
    # The wide tables scroll inside their cards at a phone's width.
    if width == 390:
        tab.goto(base + "/queues")
        wrapper = tab.locator("#queue-list").locator("xpath=..")
        assert wrapper.evaluate("el => el.scrollWidth > el.clientWidth"), "the queue table should scroll in its card"
    tab.context.close()
    assert tab.errors == [], f"JavaScript errors on the page: {tab.errors}"


def test_run_now_from_the_browser_and_read_only_controls(served_pages: tuple[Site, Seeded, str],
                                                        browser: Any) -> None:
    from playwright.sync_api import expect

    site, data, base = served_pages
    reader = _open(browser, base, 390, READ)
    for path, heading in PAGES:
        reader.goto(base + path)
        reader.wait_for_selector(f"h1:has-text('{heading}')")
        assert reader.locator("main form[data-confirm]").count() == 0, path
    reader.context.close()

    tab = _open(browser, base, 1400, ADMIN)
    tab.goto(base + "/schedules")
    question = confirm_click(tab, "tr[data-schedule='nightly-report'] button:has-text('Run now')")
    assert question == 'Enqueue a run of schedule "nightly-report" now?'
    expect(tab.locator(".flash.ok")).to_have_text('Enqueued a run of schedule "nightly-report"')
    assert [j.title for j in site.offload.list_jobs(["reports"], ["queued"])] == ["nightly-report (periodic)"]
    # Pause and resume a queue from the Queues page.
    tab.goto(base + "/queues")
    question = confirm_click(tab, "tr[data-queue='mail'] button:has-text('Pause')")
    assert question.startswith('Pause queue "mail"?')
    expect(tab.locator("tr[data-queue='mail'] .badge.paused")).to_have_text("paused")
    assert set(site.offload.paused()) == {"mail"}
    confirm_click(tab, "tr[data-queue='mail'] button:has-text('Resume')")
    expect(tab.locator(".flash.ok")).to_have_text('Resumed queue "mail"')
    expect(tab.locator("tr[data-queue='mail'] .badge.paused")).to_have_count(0)
    assert site.offload.paused() == {}
    tab.goto(base + "/scheduled")
    confirm_click(tab, f"tr[data-job-id='{data.scheduled.id}'] button:has-text('Run now')")
    expect(tab.locator(".flash.ok")).to_have_text(f"Queued job {data.scheduled.id} again")
    assert site.offload.get_job(data.scheduled.id).state == "queued"
    expect(tab.locator(f"tr[data-job-id='{data.scheduled.id}']")).to_have_count(0)
    tab.context.close()
    assert tab.errors == []


def test_search_filters_and_bulk_retry_in_the_browser(served_pages: tuple[Site, Seeded, str], browser: Any) -> None:
    from playwright.sync_api import expect

    site, _, base = served_pages
    parts = [site.offload.enqueue(jobfuncs.fail, [f"part {i}"], title=f"Import part {i}", queue="imports",
                                  max_attempts=1) for i in range(3)]
    export = site.offload.enqueue(jobfuncs.fail, ["disk"], title="Export part", queue="imports", max_attempts=1)
    site.run_worker("imports")
    tab = _open(browser, base, 390, ADMIN)
    tab.goto(base + "/jobs")
    rows = tab.locator("#job-list tbody tr")

    tab.fill("input[name=q]", "import part")
    tab.select_option("select[name=state]", "failed")
    tab.click("#job-filters button[type=submit]")
    expect(tab.locator("#job-total")).to_contain_text("(3 jobs)")
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.jobId)")) == sorted(j.id for j in parts)
    _check_layout(tab, 390, "/jobs (filtered)")

    tab.goto(base + "/jobs")
    tab.select_option("select[name=queue]", "imports")
    tab.select_option("select[name=state]", "failed")
    tab.click("#job-filters button[type=submit]")
    expect(tab.locator("#job-total")).to_contain_text("(4 jobs)")
    tab.goto(base + "/jobs")
    tab.fill("input[name=id]", export.id)
    tab.click("#job-filters button[type=submit]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-job-id", export.id)
    tab.goto(base + "/jobs")
    tab.fill("input[name=args]", '"PART 1"')
    tab.click("#job-filters button[type=submit]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-job-id", parts[1].id)
    tab.goto(base + "/jobs")
    tab.fill("input[name=from]", "2099-01-01T00:00")
    tab.click("#job-filters button[type=submit]")
    expect(tab.locator("p.empty")).to_have_text("No jobs match.")

    tab.goto(base + "/jobs?q=import+part&state=failed")
    question = confirm_click(tab, "#bulk-actions button:has-text('Retry')")
    assert question == "Retry the 3 jobs matching this filter?"
    expect(tab.locator(".flash.ok")).to_have_text("Queued 3 job(s) again")
    assert [site.offload.get_job(j.id).state for j in parts] == ["queued"] * 3
    assert site.offload.get_job(export.id).state == "failed"

    # A selection: nothing selected is refused; two selected are canceled, the third is left.
    tab.goto(base + "/jobs?q=import+part")
    assert confirm_click(tab, "#job-selection button:has-text('Cancel selected')") == "Select jobs first."
    tab.check(f"input[name=ids][value='{parts[0].id}']")
    tab.check(f"input[name=ids][value='{parts[2].id}']")
    question = confirm_click(tab, "#job-selection button:has-text('Cancel selected')")
    assert question == "Cancel the 2 selected job(s)?"
    expect(tab.locator(".flash.ok")).to_have_text("Canceled 2 job(s)")
    assert [site.offload.get_job(j.id).state for j in parts] == ["canceled", "queued", "canceled"]
    tab.context.close()
    assert tab.errors == []


def test_the_pages_work_from_the_keyboard(served_pages: tuple[Site, Seeded, str], browser: Any) -> None:
    from playwright.sync_api import expect

    _, _, base = served_pages
    tab = _open(browser, base, 1400, ADMIN)
    tab.goto(base + "/")
    tab.keyboard.press("Tab")  # the brand link
    tab.keyboard.press("Tab")  # Overview
    tab.keyboard.press("Tab")  # Queues
    assert tab.evaluate("document.activeElement.textContent") == "Queues"
    outline = tab.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), "the focused link is visibly marked"
    tab.keyboard.press("Enter")
    expect(tab.locator("h1")).to_have_text("Queues")
    tab.goto(base + "/jobs")
    tab.focus("input[name=q]")
    tab.keyboard.type("welcome")
    tab.keyboard.press("Enter")  # submits the filter form
    expect(tab.locator("#job-total")).to_contain_text("(3 jobs)")
    tab.context.close()
    assert tab.errors == []
