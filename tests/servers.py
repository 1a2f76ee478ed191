"""Private Redis and PostgreSQL servers for tests that stop, kill and restart their store.

The machine's shared services must not be restarted by a test (other test runs use them), so restart tests
start their own server on a free port in a temporary directory, from the same binaries.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import service_missing

PG_BIN_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listening on port {port} after {timeout} s")


class RedisServer:
    def __init__(self, appendonly: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            service_missing("redis-server binary", "not installed")
        self.binary = str(binary)
        self.dir = Path(tempfile.mkdtemp(prefix="offload-redis-"))
        self.port = free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class PostgresServer:
    """A throwaway cluster (initdb) run as the ``postgres`` user when the tests run as root."""

    def __init__(self) -> None:
        if not PG_BIN_CANDIDATES:
            service_missing("PostgreSQL server binaries", "no /usr/lib/postgresql/*/bin")
        self.bin = PG_BIN_CANDIDATES[0]
        self.root = Path(tempfile.mkdtemp(prefix="offload-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        os.chmod(self.root, 0o777)
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                service_missing("runuser", "needed to run PostgreSQL as a non-root user")
            self.as_user = [str(runuser), "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bin / tool), *args], check=True, capture_output=True,
                       cwd=self.root)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
        wait_port(self.port)

    def stop(self, mode: str = "immediate") -> None:
        subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"],
                       capture_output=True, cwd=self.root)

    def restart(self, mode: str = "immediate") -> None:
        self.stop(mode)
        self.start()

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_redis() -> RedisServer:
    server = RedisServer()
    server.start()
    yield server  # type: ignore[misc]
    server.cleanup()


@pytest.fixture
def private_postgres() -> PostgresServer:
    server = PostgresServer()
    server.start()
    yield server  # type: ignore[misc]
    server.cleanup()
