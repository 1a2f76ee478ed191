"""A private Redis and a private PostgreSQL for the scale benchmark (standard library only).

The scale benchmark reads its store server's CPU time and request counters, so nothing else may use that server
while it measures: the machine's shared services (6379, 5432) serve the test suites of other work too. These
servers run from the same binaries, on free loopback ports, in a directory under bench/.work that is removed at
the end. Settings: Redis as the shared one is configured here (no RDB snapshots, no AOF); PostgreSQL with
initdb's defaults (fsync on, synchronous_commit on, autovacuum on) except ``max_connections`` (16 workers of
a system with a connection pool need more than 100). tests/servers.py does the same for the test suite, but
needs pytest; this runs with any Python, as bench/run.py does.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

MAX_CONNECTIONS = 400


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout} s")


class PrivateRedis:
    def __init__(self, root: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None or shutil.which("redis-cli") is None:
            raise RuntimeError("redis-server and redis-cli are needed (Debian: apt-get install redis-server)")
        self.dir = root / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "",
             "--appendonly", "no", "--maxclients", "10000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/15"

    def version(self) -> str:
        out = subprocess.run(["redis-cli", "-p", str(self.port), "INFO", "server"], capture_output=True, text=True)
        for line in out.stdout.splitlines():
            if line.startswith("redis_version:"):
                return line.split(":", 1)[1].strip()
        return "?"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _pg_bin() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries are needed (/usr/lib/postgresql/*/bin)")
    return candidates[0]


class PrivatePostgres:
    """A throwaway cluster, run as the ``postgres`` user when this runs as root (the server refuses root)."""

    def __init__(self, root: Path) -> None:
        self.bin = _pg_bin()
        self.root = root / "postgres"
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o777)
        self.data = self.root / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise RuntimeError("runuser is needed to run PostgreSQL as a user other than root")
            self.as_user = [runuser, "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   f"-c max_connections={MAX_CONNECTIONS}")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
        wait_port(self.port)

    def _run(self, tool: str, *args: str) -> None:
        proc = subprocess.run([*self.as_user, str(self.bin / tool), *args], capture_output=True, text=True,
                              cwd=self.root)
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} failed: {(proc.stderr or proc.stdout).strip()[-500:]}")

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def version(self) -> str:
        out = subprocess.run([str(self.bin / "postgres"), "--version"], capture_output=True, text=True)
        found = re.search(r"\d+\.\d+", out.stdout)
        return found.group(0) if found else "?"

    def stop(self) -> None:
        subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                       capture_output=True, cwd=self.root)
        shutil.rmtree(self.root, ignore_errors=True)
