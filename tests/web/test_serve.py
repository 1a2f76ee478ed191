"""``offload serve`` (waitress) in a subprocess, used over real HTTP with httpx; ``offload token new``."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest

from offload.cli.web import is_loopback
from tests import jobfuncs
from tests.web.conftest import ADMIN, READ, ROOT, Site, first_line, start_server, subprocess_env, wait_until


def action(client: httpx.Client, name: str, token: str = ADMIN, **params: object) -> httpx.Response:
    return client.post(f"/api/3/action/{name}", json=params, headers={"Authorization": token})


def test_a_full_flow_over_http(site: Site) -> None:
    proc, base = start_server(site)
    with httpx.Client(base_url=base, timeout=10) as client:
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert client.get("/api/3/action/job_list").status_code == 403
        assert client.get("/metrics").status_code == 403

        enqueued = action(client, "job_enqueue", task="tests.echo", args=["over", "http"], queue="default")
        assert enqueued.status_code == 200, enqueued.text
        job_id = enqueued.json()["result"]["id"]
        listed = client.get("/api/3/action/job_list", params={"ids_only": "true"}, headers={"Authorization": READ})
        assert listed.json()["result"] == [job_id]
        site.run_worker()
        shown = action(client, "job_show", token=READ, id=job_id).json()["result"]
        assert shown["state"] == "finished" and shown["result"] == {"args": ["over", "http"], "kwargs": {}}

        # A live worker running a long job: listed with its job, counted in metrics, and the job can be canceled.
        sleeper = site.offload.enqueue(jobfuncs.sleep, [60], title="Long nap")
        site.start("worker", "--name", "web-test-worker")
        workers = wait_until(lambda: [w for w in action(client, "worker_list").json()["result"]
                                      if sleeper.id in w["jobs"]])
        assert workers[0]["id"] == "web-test-worker"
        text = client.get("/metrics", headers={"Authorization": READ}).text
        assert "offload_workers_alive 1" in text.splitlines()
        assert 'offload_worker_running_jobs{worker="web-test-worker"} 1' in text.splitlines()
        canceled = action(client, "job_cancel", id=sleeper.id)
        assert canceled.json()["result"]["state"] == "canceled"
        assert site.offload.get_job(sleeper.id).state == "canceled"

        page = client.get("/")
        assert page.status_code == 403 and 'name="token"' in page.text
    proc.terminate()
    assert proc.wait(10) is not None


def test_serve_under_a_prefix(sqlite_site: Site) -> None:
    _, base = start_server(sqlite_site, "--prefix", "/offload/")
    assert base.endswith("/offload")
    with httpx.Client(base_url=base, timeout=10) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        login = client.get("/login")
        assert 'action="/offload/login"' in login.text
        help_url = client.get("/api/3/action/job_list", headers={"Authorization": READ}).json()["help"]
        assert help_url.endswith("/offload/api/3/action/help_show?name=job_list")
        root = httpx.get(base.rsplit("/offload", 1)[0] + "/healthz")
        assert root.status_code == 404


def test_serve_refuses_a_public_address_without_tokens(sqlite_site: Site) -> None:
    for host in ("0.0.0.0", "example.org"):
        out = subprocess.run(sqlite_site.command("serve", "--host", host, "--port", "0"), capture_output=True,
                             text=True, env=subprocess_env(), timeout=60)
        assert out.returncode == 1, host
        assert f"refusing to listen on {host} without API tokens" in out.stderr


def test_serve_on_loopback_without_tokens_warns_and_refuses_requests(sqlite_site: Site) -> None:
    proc = sqlite_site.start("serve", "--port", "0")
    base = re.search(r"(http://\S+?)/?$", first_line(proc).strip())
    assert base
    with httpx.Client(base_url=base.group(1), timeout=10) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/api/3/action/job_list", headers={"Authorization": ADMIN}).status_code == 403
    proc.kill()
    proc.wait(10)
    assert "no API tokens are configured" in (sqlite_site.tmp / "proc-0.log").read_text()


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.8.0.1", True), ("localhost", True),
                                                ("::1", True), ("[::1]", True), ("0.0.0.0", False), ("::", False),
                                                ("10.0.0.1", False), ("myhost", False), ("", False)])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_token_new_prints_fresh_random_tokens() -> None:
    def run(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "offload", "token", "new", *args], capture_output=True,
                             text=True, env=subprocess_env(), timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    first, second = run(), run()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", first) and first != second
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}:read", run("--role", "read"))


BLOCK_FLASK = "import sys; sys.modules['flask'] = None; from offload.cli import main; main()"


def test_core_cli_works_without_the_web_extra(tmp_path: object) -> None:
    env = subprocess_env(OFFLOAD_STORE=f"sqlite:///{tmp_path}/x.db")
    listed = subprocess.run([sys.executable, "-c", BLOCK_FLASK, "list"], capture_output=True, text=True, env=env,
                            timeout=60, cwd=ROOT)
    assert listed.returncode == 0 and listed.stdout == "There are no queued jobs.\n"
    served = subprocess.run([sys.executable, "-c", BLOCK_FLASK, "serve"], capture_output=True, text=True, env=env,
                            timeout=60, cwd=ROOT)
    assert served.returncode == 1
    assert "pip install 'offload[web]'" in served.stderr
