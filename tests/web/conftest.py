"""Fixtures for the API and dashboard tests: a site on a real store (SQLite and PostgreSQL), the Flask app
over it, real burst workers in subprocesses, and ``offload serve`` in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from offload import Offload
from offload.web import create_app
from tests.conftest import engine_url, service_missing
from tests.waiting import wait_until  # noqa: F401  (re-exported for the tests here)

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "adm-" + uuid.uuid4().hex
READ = "rd-" + uuid.uuid4().hex
TOKENS = f"{ADMIN}:admin,{READ}:read"
TASK_MODULE = "tests.taskmods.echo_tasks"
ENGINES = ["sqlite", "postgresql"]




def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_") or k == "OFFLOAD_REQUIRE_SERVICES"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env.update(extra)
    return env


@dataclass
class Site:
    """One site on one store, with the app and a test client over it."""

    url: str
    site_id: str
    tmp: Path
    offload: Offload
    app: Flask
    client: FlaskClient
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def call(self, name: str, params: dict[str, Any] | None = None, token: str | None = ADMIN,
             method: str = "POST", body: bytes | dict[str, str] | None = None,
             content_type: str | None = None) -> tuple[int, dict[str, Any]]:
        """Call an action with ``params`` (JSON body, or query string for GET) or a raw ``body``;
        returns (status, envelope)."""
        headers = {"Authorization": token} if token else {}
        url = f"/api/3/action/{name}"
        if method == "GET":
            response = self.client.get(url, query_string=params or {}, headers=headers)
        elif body is not None:
            response = self.client.post(url, data=body, content_type=content_type, headers=headers)
        else:
            response = self.client.post(url, json=params or {}, headers=headers)
        assert response.mimetype == "application/json", response.data[:200]
        return response.status_code, response.get_json()

    def result(self, name: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        status, body = self.call(name, data, **kwargs)
        assert status == 200 and body["success"] is True, body
        return body["result"]

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "offload", "--store", self.url, "--site-id", self.site_id, *args]

    def run_worker(self, *queues: str) -> subprocess.CompletedProcess[str]:
        """A real burst worker: runs every due job of ``queues`` (default: default) and exits."""
        out = subprocess.run(self.command("worker", "--burst", "--import", TASK_MODULE, *queues),
                             capture_output=True, text=True, env=subprocess_env(), cwd=self.tmp, timeout=60)
        assert out.returncode == 0, out.stderr
        return out

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        log = open(self.tmp / f"proc-{len(self.procs)}.log", "w")
        proc = subprocess.Popen(self.command(*args), stdout=subprocess.PIPE, stderr=log, text=True,
                                env=subprocess_env(**(env or {})), cwd=self.tmp)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            if proc.stdout:
                proc.stdout.close()
        self.offload.close()


def make_site(engine: str, tmp_path: Path, **settings: Any) -> Site:
    url = engine_url(engine, tmp_path)
    site_id = f"web{uuid.uuid4().hex[:10]}"
    offload = Offload(store=url, site_id=site_id, api__tokens=TOKENS, tasks__imports=TASK_MODULE, **settings)
    app = create_app(offload, {"TESTING": True})
    return Site(url, site_id, tmp_path, offload, app, app.test_client())


@pytest.fixture(params=ENGINES)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    s = make_site(request.param, tmp_path)
    yield s
    s.stop_all()


@pytest.fixture
def sqlite_site(tmp_path: Path) -> Iterator[Site]:
    s = make_site("sqlite", tmp_path)
    yield s
    s.stop_all()


def first_line(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """The first line a subprocess prints, waiting at most ``timeout`` seconds for it."""
    assert proc.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    if not lines:
        proc.kill()
        raise AssertionError(f"no output within {timeout} s")
    return lines[0]


SERVING_RE = re.compile(r"Serving offload on (http://\S+?)/?$")


def start_server(s: Site, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """``offload serve --port 0`` in a subprocess; returns the process and its base URL (read from its
    first line of output, printed once the socket listens)."""
    proc = s.start("serve", "--port", "0", *args,
                   env={"OFFLOAD_API_TOKENS": TOKENS, "OFFLOAD_TASKS_IMPORTS": TASK_MODULE, **(env or {})})
    line = first_line(proc)
    match = SERVING_RE.search(line.strip())
    assert match, f"unexpected first line {line!r}; log: {(s.tmp / f'proc-{len(s.procs) - 1}.log').read_text()}"
    return proc, match.group(1)


# -- Chromium (Debian's, driven by Playwright) for the browser tests -----------------------------------------------
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Auto-refresh runs every 5 s and the worker registry is written every 5 s: waits on the page allow for both.
PAGE_WAIT_MS = 25_000


def browser_missing() -> str | None:
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} not found (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = browser_missing()
    if reason:
        service_missing("Chromium", reason)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=PAGE_WAIT_MS)
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        yield launched
        launched.close()
