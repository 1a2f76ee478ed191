"""What the fault scenarios are built from: stores on private servers, worker processes, a producer process.

Every store the battery uses runs on a private server (tests/servers.py) or in a private directory, so the
battery can kill and restart it, and its load never disturbs other test runs on the machine's shared services.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offload import Offload
from tests.faults.ledger import Kill
from tests.waiting import wait_until  # noqa: F401  (re-exported for the tests here)

ROOT = Path(__file__).resolve().parents[2]
ENGINES = ("sqlite", "redis", "postgresql")




def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            state = next(line for line in f if line.startswith("State:"))
        return "Z" not in state.split()[1]
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return False


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc; empty if it is gone)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return env


def _servers_module() -> Any:
    """tests.servers, imported the way pytest does (through tests.conftest, which it imports back)."""
    import tests.conftest
    import tests.servers

    return tests.servers


# -- stores ------------------------------------------------------------------------------------------------
class Servers:
    """Private store servers, started on first use and shared by scenarios that only need a store; a scenario
    that restarts its store asks for a fresh one (``fresh_redis``, ``fresh_postgres``) and owns it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._shared: dict[str, Any] = {}
        self._owned: list[Any] = []

    def redis(self) -> Any:
        if "redis" not in self._shared:
            self._shared["redis"] = self.fresh_redis()
        return self._shared["redis"]

    def postgres(self) -> Any:
        if "postgresql" not in self._shared:
            self._shared["postgresql"] = self.fresh_postgres()
        return self._shared["postgresql"]

    def redis_cluster(self) -> Any:
        """Three Redis Cluster masters (tests/ha), shared like the other servers."""
        if "redis-cluster" not in self._shared:
            from tests.ha.servers import RedisCluster

            cluster = RedisCluster()
            self._owned.append(cluster)
            cluster.start()
            self._shared["redis-cluster"] = cluster
        return self._shared["redis-cluster"]

    def fresh_redis(self, appendonly: bool = False) -> Any:
        server = _servers_module().RedisServer(appendonly=appendonly)
        server.start()
        self._owned.append(server)
        return server

    def fresh_postgres(self) -> Any:
        server = _servers_module().PostgresServer()
        server.start()
        self._owned.append(server)
        return server

    def url(self, engine: str, workdir: Path) -> str:
        """A store URL of ``engine`` private to ``workdir`` (a fresh SQLite file, Redis prefix or schema)."""
        tag = uuid.uuid4().hex[:8]
        if engine == "sqlite":
            return f"sqlite:///{workdir}/offload.db"
        if engine == "redis":
            return f"{self.redis().url}?prefix=faults-{tag}"
        if engine == "postgresql":
            return f"{self.postgres().url}?schema=faults_{tag}"
        if engine == "redis-cluster":
            nodes = ",".join(f"{host}:{port}" for host, port in self.redis_cluster().addrs)
            return f"redis+cluster://{nodes}?prefix=faults-{tag}"
        raise ValueError(f"unknown engine {engine!r}")

    def release(self, server: Any) -> None:
        """Stop a server a scenario asked for with ``fresh_*`` and delete its data."""
        server.cleanup()
        if server in self._owned:
            self._owned.remove(server)

    def cleanup(self) -> None:
        for server in self._owned:
            server.cleanup()
        self._owned.clear()
        self._shared.clear()


# -- workers -----------------------------------------------------------------------------------------------
@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log_path: Path
    since: float  # wall clock at start

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None


def _limit_address_space(mib: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (mib * 1048576, mib * 1048576))

    return apply


@dataclass
class WorkerSet:
    """Worker processes (``offload worker``) of one site, started and killed by the scenario."""

    url: str
    site: str
    workdir: Path
    queues: Sequence[str] = ("faults",)
    options: Sequence[str] = ()
    address_space_mib: int | None = None
    workers: list[Worker] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)

    def start(self, *extra: str, env: dict[str, str] | None = None) -> Worker:
        """Start a worker; ``env``: settings for it alone (e.g. ``OFFLOAD_WORKER_HOST_ID``, another host)."""
        n = len(self.workers)
        log_path = self.workdir / f"worker-{n}.log"
        cmd = [sys.executable, "-m", "offload", "--store", self.url, "--site-id", self.site, "worker",
               *self.queues, "--without-scheduler", *self.options, *extra]
        preexec = _limit_address_space(self.address_space_mib) if self.address_space_mib else None
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, env={**clean_env(), **(env or {})}, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=self.workdir, preexec_fn=preexec)
        worker = Worker(proc, log_path, time.time())
        self.workers.append(worker)
        return worker

    @property
    def running(self) -> list[Worker]:
        return [w for w in self.workers if w.alive()]

    def kill(self, worker: Worker) -> Kill:
        """SIGKILL a supervisor (its executors die with it: PR_SET_PDEATHSIG) and reap it."""
        worker.proc.send_signal(signal.SIGKILL)
        at = time.time()
        worker.proc.wait(30)
        kill = Kill(worker.pid, at, worker.since)
        self.kills.append(kill)
        return kill

    def stop_all(self, timeout: float = 30.0) -> list[int | None]:
        """SIGTERM every running worker, then SIGKILL what is left after ``timeout``; their exit codes."""
        for w in self.running:
            w.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for w in self.workers:
            try:
                w.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait(10)
        return [w.proc.returncode for w in self.workers]

    def kill_all(self) -> None:
        for w in self.workers:
            if w.alive():
                w.proc.kill()
            w.proc.wait(30)


# -- producer ----------------------------------------------------------------------------------------------
@dataclass
class Producer:
    """``python -m tests.faults.producer``: enqueues through outages and logs each acknowledged job id."""

    proc: subprocess.Popen[bytes]
    acks: Path
    stop_file: Path

    @classmethod
    def start(cls, url: str, site: str, workdir: Path, ledger: Path, *, batch: int, every: float,
              seconds: float = 0.0, limit: int = 0) -> Producer:
        acks = workdir / f"acks-{uuid.uuid4().hex[:6]}.txt"
        stop_file = workdir / f"stop-{acks.stem}"
        cmd = [sys.executable, "-m", "tests.faults.producer", "--store", url, "--site-id", site, "--ledger",
               str(ledger), "--acks", str(acks), "--stop-file", str(stop_file), "--batch", str(batch),
               "--every", str(every), "--seconds", str(seconds), "--limit", str(limit)]
        log = open(workdir / f"{acks.stem}.log", "wb")
        proc = subprocess.Popen(cmd, env=clean_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=workdir)
        log.close()
        return cls(proc, acks, stop_file)

    def acknowledged(self) -> dict[str, float]:
        """Acknowledged job id -> when the store acknowledged it (wall clock)."""
        if not self.acks.exists():
            return {}
        out = {}
        for line in self.acks.read_text().split("\n"):
            parts = line.split()
            if len(parts) == 2:  # a line cut short by a SIGKILL was never complete, so never acknowledged
                out[parts[0]] = float(parts[1])
        return out

    def stop(self, timeout: float = 60.0) -> int | None:
        self.stop_file.touch()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None


# -- sites -------------------------------------------------------------------------------------------------
def new_site() -> str:
    return f"f{uuid.uuid4().hex[:10]}"


def workdir_for(root: Path | None, name: str) -> Path:
    base = root if root is not None else Path(tempfile.gettempdir())
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))
    return path


def open_app(url: str, site: str) -> Offload:
    return Offload(store=url, site_id=site)


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
