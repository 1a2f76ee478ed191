"""Real receivers and real workers for the notification tests.

``Receiver``: an HTTP server in a thread on 127.0.0.1 (an ephemeral port) that records every request and
answers from a script (``statuses``), optionally hanging until the test ends. ``EventWorkers``: the worker
tests' ``Workers`` with offload settings given to both the test's site and the worker subprocesses.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from offload import Offload
from tests.conftest import engine_url
from tests.worker.conftest import ROOT, Workers

# Fast retries and a short request timeout; loopback receivers allowed.
FAST = {
    "offload.webhooks.allowed_hosts": "127.0.0.1",
    "offload.webhooks.retry_delay": "0.05",
    "offload.webhooks.max_retry_delay": "0.2",
    "offload.webhooks.timeout": "3",
}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class Receiver:
    """A webhook receiver: answers request n with ``statuses[n]`` (then ``default``)."""

    def __init__(self, statuses: list[int] | None = None, default: int = 200, hang: bool = False,
                 headers: dict[str, str] | None = None, host: str = "127.0.0.1") -> None:
        self.statuses = list(statuses or [])
        self.default = default
        self.hang = hang
        self.extra_headers = headers or {}
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
        self.host = host
        self.server = server_class((host, 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/hook"

    def events(self) -> list[Any]:
        with self.lock:
            return [r.json for r in self.requests]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                    n = len(receiver.requests) - 1
                    status = receiver.statuses[n] if n < len(receiver.statuses) else receiver.default
                if receiver.hang:
                    receiver.release.wait(60)
                    return
                reply = b'{"ok": true}' if status < 300 else b"receiver says no"
                self.send_response(status)
                for name, value in receiver.extra_headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(*args: Any, **kwargs: Any) -> Receiver:
        receiver = Receiver(*args, **kwargs)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.close()


def _setting_kwargs(settings: dict[str, str]) -> dict[str, str]:
    return {key.removeprefix("offload.").replace(".", "__"): value for key, value in settings.items()}


class EventWorkers(Workers):
    """``Workers`` whose site (``app``) and worker subprocesses share ``settings`` and ``extra_env``."""

    def __init__(self, url: str, site: str, tmp: Path, settings: dict[str, str],
                 extra_env: dict[str, str] | None = None) -> None:
        super().__init__(url, site, tmp)
        self.app.close()
        self.settings = dict(settings)
        self.extra_env = dict(extra_env or {})
        self.app = Offload(store=url, site_id=site, **_setting_kwargs(self.settings))

    def env(self) -> dict[str, str]:
        env = super().env()
        for key in list(env):
            if key.startswith("OFFLOAD_") and key not in ("OFFLOAD_CONFIG",):
                env.pop(key)
        env.update({key.upper().replace(".", "_"): value for key, value in self.settings.items()})
        env.update(self.extra_env)
        return env

    def run_cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "offload", "--store", self.url, "--site-id", self.site, *args]
        return subprocess.run(cmd, env=self.env(), capture_output=True, text=True, cwd=ROOT, timeout=timeout)

    def start_cli(self, *args: str, log: str | None = None) -> subprocess.Popen[str]:
        """Start ``offload <args>`` (not only ``worker``) in the background, stderr to a log file."""
        log_path = self.tmp / (log or f"proc-{len(self.procs)}.log")
        cmd = [sys.executable, "-m", "offload", "--store", self.url, "--site-id", self.site, *args]
        proc = subprocess.Popen(cmd, env=self.env(), stdout=subprocess.PIPE, stderr=open(log_path, "w"),
                                text=True, cwd=self.tmp)
        proc.log_path = log_path  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc


@pytest.fixture
def make_workers(tmp_path: Path) -> Iterator[Callable[..., EventWorkers]]:
    made: list[EventWorkers] = []

    def make(settings: dict[str, str] | None = None, extra_env: dict[str, str] | None = None) -> EventWorkers:
        workers = EventWorkers(engine_url("sqlite", tmp_path), f"e{uuid.uuid4().hex[:10]}", tmp_path,
                               {**FAST, **(settings or {})}, extra_env)
        made.append(workers)
        return workers

    yield make
    for workers in made:
        workers.stop_all()


def read_ledger(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ledger_env(directory: Path) -> dict[str, str]:
    return {"OFFLOAD_TEST_LEDGER_DIR": str(directory)}

