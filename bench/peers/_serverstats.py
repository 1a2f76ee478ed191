"""What a store server spent, read from outside the systems measured (standard library only; runs in every venv).

- **CPU time.** Redis: ``INFO`` through ``redis-cli`` (``used_cpu_sys + used_cpu_user``: the server process's
  own rusage, every thread, microseconds). PostgreSQL: every process of the server from ``/proc``: the on-CPU
  nanoseconds of each live process (``/proc/<pid>/schedstat``, exact, where utime/stime are in 10 ms ticks)
  plus the postmaster's ``cutime + cstime``, the CPU of its children that exited and were reaped (backends of
  closed connections, autovacuum workers), so that no process that ended during a measurement is missed.
- **Request segments.** The kernel counts, per TCP socket, the data segments it received
  (``ss -ti``: ``data_segs_in``). Summed over the server's end of the workers' connections, that is the number
  of requests the workers sent, where a request (or a pipeline of them) is written at once: one per round
  trip. How that was checked, and its limits, are in bench/README.md.

Only the connections of processes carrying ``BENCH_SCALE_SLOT`` in their environment (the workers and
every process they fork) are counted: not the driver's own, not ``redis-cli``'s.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")
#: A server using less CPU than this (cores) is idle enough to start measuring.
QUIET_CORES = 0.05
WORKER_TAG = b"BENCH_SCALE_SLOT="


@dataclass
class TcpSocket:
    """One established TCP socket as ``ss -tinHe`` shows it."""

    local: tuple[str, int]
    peer: tuple[str, int]
    inode: int
    data_segs_in: int = 0
    data_segs_out: int = 0


def _endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


_COUNTER = re.compile(r"\b(data_segs_in|data_segs_out):(\d+)")
_INODE = re.compile(r"\bino:(\d+)")


def parse_ss(text: str) -> list[TcpSocket]:
    """Parse ``ss -tinHe state established ...``: a line per socket (Recv-Q, Send-Q, local, peer, extras such as
    ``ino:``), then an indented line of TCP info (counters that are 0 are left out by ss)."""
    sockets: list[TcpSocket] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0].isspace():
            if sockets:
                for name, value in _COUNTER.findall(line):
                    setattr(sockets[-1], name, int(value))
            continue
        fields = line.split()
        if len(fields) < 4:
            continue
        inode = _INODE.search(line)
        sockets.append(TcpSocket(_endpoint(fields[2]), _endpoint(fields[3]), int(inode.group(1)) if inode else 0))
    return sockets


def parse_info(text: str) -> dict[str, str]:
    """Parse Redis ``INFO`` output (``# Section`` headers, ``key:value`` lines, CRLF or LF)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and ":" in line:
            key, _, value = line.partition(":")
            out[key] = value
    return out


def redis_counters(info: dict[str, str]) -> dict[str, float]:
    """CPU seconds of the server process and its request counters, from parsed INFO."""
    return {
        "cpu_s": float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
        "reads": float(info.get("total_reads_processed", "nan")),
        "commands": float(info.get("total_commands_processed", "nan")),
    }


def parse_listener_pid(text: str) -> int | None:
    """The pid of the process in ``ss -ltnpH`` output (``users:(("postgres",pid=2233,fd=5))``)."""
    found = re.search(r"pid=(\d+)", text)
    return int(found.group(1)) if found else None


def parse_stat(text: str) -> dict[str, int]:
    """ppid, utime, stime, cutime, cstime (ticks) from ``/proc/<pid>/stat`` (the name may hold spaces)."""
    rest = text[text.rfind(")") + 2:].split()
    return {"ppid": int(rest[1]), "utime": int(rest[11]), "stime": int(rest[12]), "cutime": int(rest[13]),
            "cstime": int(rest[14])}


def _ss(*args: str) -> str:
    return subprocess.run(["ss", *args], capture_output=True, text=True, check=True).stdout


def listener_pid(port: int) -> int:
    pid = parse_listener_pid(_ss("-ltnpH", f"( sport = :{port} )"))
    if pid is None:
        raise RuntimeError(f"no process found listening on port {port} (ss -ltnp; needs root for another user's)")
    return pid


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of ``root`` and its live children (schedstat, ns) plus what its reaped children used
    (root's cutime + cstime). For the PostgreSQL postmaster: the whole server."""
    total_ns = 0
    root_stat = None
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            stat = parse_stat(Path(entry.path, "stat").read_text())
            if pid != root and stat["ppid"] != root:
                continue
            total_ns += int(Path(entry.path, "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):  # gone meanwhile: its time is in root's cutime once reaped
            continue
        if pid == root:
            root_stat = stat
    if root_stat is None:
        raise RuntimeError(f"server process {root} is gone")
    return total_ns / 1e9 + (root_stat["cutime"] + root_stat["cstime"]) / TICKS


def tagged_pids(tag: bytes = WORKER_TAG) -> set[int]:
    """Processes whose environment holds ``tag`` (the workers of this cell and their children)."""
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if tag in Path(entry.path, "environ").read_bytes():
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def socket_inodes(pids: set[int]) -> set[int]:
    """Inodes of the sockets the processes ``pids`` hold open."""
    inodes = set()
    for pid in pids:
        try:
            fds = os.scandir(f"/proc/{pid}/fd")
        except OSError:
            continue
        with fds:
            for fd in fds:
                try:
                    target = os.readlink(fd.path)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def server_side_segments(sockets: list[TcpSocket], port: int, client_inodes: set[int]) -> dict[str, int]:
    """``data_segs_in`` of the server's end of each connection to ``port`` whose client end is one of
    ``client_inodes``, keyed by the connection (client address:port)."""
    clients = {s.local for s in sockets if s.peer[1] == port and s.inode in client_inodes}
    return {f"{s.peer[0]}:{s.peer[1]}": s.data_segs_in for s in sockets if s.local[1] == port and s.peer in clients}


def segments_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Requests received between two snapshots: connections in both count their difference, connections opened
    since count whole; ``lost`` says how many connections of ``before`` had closed (what they did since is
    not seen)."""
    total = sum(count - before.get(key, 0) for key, count in after.items())
    return {"segments": total, "connections": len(after), "lost": sum(1 for key in before if key not in after)}


@dataclass
class ServerProbe:
    """Reads the server of one store: ``kind`` is ``"redis"``, ``"postgres"`` or ``"none"`` (SQLite)."""

    kind: str
    host: str = "127.0.0.1"
    port: int = 0
    pid: int = 0
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind == "postgres":
            self.pid = listener_pid(self.port)

    def cpu(self) -> dict[str, float]:
        if self.kind == "redis":
            out = subprocess.run(["redis-cli", "-h", self.host, "-p", str(self.port), "INFO"], capture_output=True,
                                 text=True, check=True).stdout
            return redis_counters(parse_info(out))
        if self.kind == "postgres":
            return {"cpu_s": tree_cpu_seconds(self.pid)}
        return {}

    def wait_quiet(self, limit: float = QUIET_CORES, sample: float = 0.5, timeout: float = 60.0) -> dict[str, float]:
        """Wait until the server uses at most ``limit`` cores over ``sample`` seconds (work left over from before
        the measurement, such as autovacuum after an earlier cell's churn or a checkpoint, would be counted as this
        cell's); give up after ``timeout`` seconds. Returns the last rate seen and how long it took."""
        if self.kind == "none":
            return {}
        began = time.monotonic()
        while True:
            before = self.cpu()["cpu_s"]
            time.sleep(sample)
            rate = (self.cpu()["cpu_s"] - before) / sample
            waited = time.monotonic() - began
            if rate <= limit or waited >= timeout:
                return {"server_cores_before": rate, "waited_for_quiet_s": waited}

    def snapshot(self) -> dict[str, Any]:
        """Server CPU (and Redis's counters) and the workers' request segments, each with the monotonic time
        (ns) it was read at."""
        if self.kind == "none":
            return {}
        out: dict[str, Any] = {"cpu_t": time.monotonic_ns()}
        out.update(self.cpu())
        out["cpu_t"] = (out["cpu_t"] + time.monotonic_ns()) // 2
        workers = socket_inodes(tagged_pids())
        out["ss_t"] = time.monotonic_ns()
        text = _ss("-tinHe", "state", "established", f"( sport = :{self.port} or dport = :{self.port} )")
        out["ss_t"] = (out["ss_t"] + time.monotonic_ns()) // 2
        out["segments"] = server_side_segments(parse_ss(text), self.port, workers)
        return out
