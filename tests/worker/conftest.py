"""Real worker processes for the worker tests: spawn, signal, wait on store state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from offload import Offload
from offload.jobs import Job
from tests.conftest import engine_url
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


class Workers:
    def __init__(self, url: str, site: str, tmp: Path) -> None:
        self.url = url
        self.site = site
        self.tmp = tmp
        self.procs: list[subprocess.Popen[str]] = []
        self.app = Offload(store=url, site_id=site)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        env.pop("OFFLOAD_CONFIG", None)
        return env

    def start(self, *args: str, log: str | None = None, config: Path | None = None) -> subprocess.Popen[str]:
        log_path = self.tmp / (log or f"worker-{len(self.procs)}.log")
        options = ["-c", str(config)] if config is not None else []
        cmd = [sys.executable, "-m", "offload", *options, "--store", self.url, "--site-id", self.site, "worker",
               *args]
        proc = subprocess.Popen(cmd, env=self.env(), stdout=subprocess.PIPE, stderr=open(log_path, "w"),
                                text=True, cwd=self.tmp)
        proc.log_path = log_path  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def log(self, proc: subprocess.Popen[str]) -> str:
        return Path(proc.log_path).read_text()  # type: ignore[attr-defined]

    def job(self, job_id: str) -> Job:
        return self.app.get_job(job_id)

    def wait_state(self, job_id: str, *states: str, timeout: float = 20.0) -> Job:
        return wait_until(lambda: (j := self.job(job_id)).state in states and j, timeout)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        self.app.close()


@pytest.fixture(params=["sqlite"])
def workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workers]:
    url = engine_url(request.param, tmp_path)
    w = Workers(url, f"w{uuid.uuid4().hex[:10]}", tmp_path)
    yield w
    w.stop_all()
