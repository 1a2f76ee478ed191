"""The dashboard in headless Chromium (Debian's ``chromium`` driven by Playwright) against ``offload serve``:
log in, read the overview, open a failed job's traceback, retry it, cancel a queued job, and watch states
change through auto-refresh. Screenshots go to ``test-artifacts/dashboard/``.

Skipped locally when Chromium or Playwright is missing; a failure when OFFLOAD_REQUIRE_SERVICES is set (CI).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import jobfuncs
from tests.conftest import service_missing
from tests.web.conftest import ADMIN, PAGE_WAIT_MS, ROOT, Site, browser_missing, make_site, start_server, wait_until

ARTIFACTS = ROOT / "test-artifacts" / "dashboard"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(PAGE_WAIT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture(params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Site, str]]:
    if browser_missing():
        service_missing("Chromium", str(browser_missing()))
    site = make_site(request.param, tmp_path)
    _, base = start_server(site)
    yield site, base
    site.stop_all()


def confirm_click(page: Any, selector: str, accept: bool = True) -> str:
    """Click a button that asks for confirmation; accept or dismiss the dialog; return its question."""
    questions: list[str] = []

    def answer(dialog: Any) -> None:
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", answer)
    page.click(selector)
    assert questions, "no confirmation was asked"
    return questions[0]


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    assert (ARTIFACTS / name).stat().st_size > 1000


def test_dashboard_in_a_browser(served: tuple[Site, str], page: Any) -> None:
    from playwright.sync_api import expect

    site, base = served
    engine = "postgresql" if site.url.startswith("postgresql") else "sqlite"
    failed = site.offload.enqueue(jobfuncs.fail, ["catalogue.csv is missing"], title="Import catalogue",
                                  max_attempts=1)
    site.offload.enqueue(jobfuncs.add, [2, 3], title="Add numbers")
    site.run_worker()
    mail = [site.offload.enqueue(jobfuncs.noop, title=f"Welcome mail {i}", queue="mail") for i in range(2)]

    # Log in: every page shows the login form until then.
    page.goto(base + "/")
    expect(page.locator("h1")).to_have_text("Log in")
    page.fill("#token", "not the token")
    page.click("button[type=submit]")
    expect(page.locator(".flash.error")).to_have_text("That token is not valid.")
    page.fill("#token", ADMIN)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Overview")

    # The overview: queues by state, the throughput chart drawn by the page script.
    expect(page.locator('tr[data-queue="mail"] td[data-state="queued"]')).to_have_text("2")
    expect(page.locator('tr[data-queue="default"] td[data-state="failed"]')).to_have_text("1")
    expect(page.locator('tr[data-queue="default"] td[data-state="finished"]')).to_have_text("1")
    assert page.locator("#throughput rect.bar").count() >= 1
    shot(page, f"{engine}-01-overview.png")

    # A failed job: from the count, to the list, to its traceback.
    page.click('tr[data-queue="default"] td[data-state="failed"] a')
    expect(page.locator("h1")).to_contain_text("failed")
    page.click("text=Import catalogue")
    expect(page.locator("#job-state")).to_have_text("failed")
    expect(page.locator("#job-traceback")).to_contain_text("Traceback (most recent call last)")
    expect(page.locator("#job-traceback")).to_contain_text("ValueError: catalogue.csv is missing")
    shot(page, f"{engine}-02-failed-job.png")

    # Retry it, behind a confirmation.
    assert confirm_click(page, "button:has-text('Retry')") == f"Queue job {failed.id} again?"
    expect(page.locator(".flash.ok")).to_have_text(f"Queued job {failed.id} again")
    expect(page.locator("#job-state")).to_have_text("queued")
    assert site.offload.get_job(failed.id).state == "queued"
    shot(page, f"{engine}-03-retried.png")

    # A worker runs it (and it fails again): auto-refresh shows the new state without a reload.
    site.start("worker", "--name", f"browser-worker-{engine}")
    expect(page.locator("#job-state")).to_have_text("failed")
    expect(page.locator("#job-attempts")).to_have_text("1 of 1")

    # Cancel a queued job; a dismissed confirmation changes nothing.
    page.goto(base + "/jobs?queue=mail")
    page.click("text=Welcome mail 0")
    expect(page.locator("#job-state")).to_have_text("queued")
    confirm_click(page, "button:has-text('Cancel')", accept=False)
    assert site.offload.get_job(mail[0].id).state == "queued"
    assert confirm_click(page, "button:has-text('Cancel')") == f"Cancel job {mail[0].id}?"
    expect(page.locator(".flash.ok")).to_have_text(f"Canceled job {mail[0].id}")
    expect(page.locator("#job-state")).to_have_text("canceled")
    assert site.offload.get_job(mail[0].id).state == "canceled"
    shot(page, f"{engine}-04-canceled.png")

    # A running job shows against its worker on the overview, with its progress.
    napping = site.offload.enqueue(jobfuncs.sleep, [60], title="Long nap")
    page.goto(base + "/")
    expect(page.locator("#workers")).to_contain_text("Long nap")
    expect(page.locator('tr[data-queue="mail"] td[data-state="canceled"]')).to_have_text("1")
    shot(page, f"{engine}-05-overview-with-worker.png")
    site.offload.cancel(napping.id)
    wait_until(lambda: site.offload.get_job(napping.id).state == "canceled")
    assert re.search(r"Log out", page.content())
