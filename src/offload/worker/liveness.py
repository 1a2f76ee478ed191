"""Dead-worker detection, faster than the lease.

Every ``HEARTBEAT`` seconds a supervisor makes its liveness exchange with the store (``Store.reap_dead_workers``):
its own heartbeat, and the rule every live worker applies to the others. Every ``REGISTRY_EVERY`` seconds it also
reads the registry to learn which workers run on its host. A worker silent for
``offload.worker.dead_after`` seconds is dead, and so is a worker on this host whose supervisor process is gone;
the store puts a dead worker's started jobs back on their queues at once (attempt counted, error ``WorkerLost``).
A worker that was only paused (SIGSTOP, a frozen VM) and comes back finds those jobs fenced off, as after an
expired lease: its late results are rejected. The lease stays the last resort (a worker with no registry entry).

Same host: workers with the same host identity (the kernel's boot id and the PID namespace, or the
``offload.worker.host_id`` setting) see each other's processes. A registered worker whose PID is gone, a zombie, or
now a process started at another time (the PID was reused) is dead at once.

Silence is measured on the callers' clocks (a heartbeat is stored as the time the worker sent it), so hosts'
clocks must agree to well within ``dead_after``, as they must within the lease. A worker that could not reach the
store (or has just started) does not declare anyone dead for silence until every live worker has had the time
to reconnect and heartbeat again (``RECONNECT``): after an outage every heartbeat is old, and none of those
workers is dead.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from offload.jobs import Job, WorkerInfo
from offload.stores import Store

log = logging.getLogger("offload")

#: Seconds between a supervisor's liveness exchanges (heartbeat and reaping).
HEARTBEAT = 1.0
#: Seconds between two reads of the registry, for the workers on this host (whose processes are checked at every
#: liveness check, in /proc): a read returns every entry of the site, so its cost grows with the workers.
REGISTRY_EVERY = 5.0
#: How long a live worker may take to reach the store again after an outage: the longest reconnect backoff of a
#: supervisor (``Supervisor._store_call``), in seconds.
RECONNECT = 10.0

StoreCall = Callable[..., Any]


def host_identity(configured: str = "") -> str:
    """``configured`` when given, else this machine's boot id and PID namespace (processes with the same identity
    can see each other's PIDs); empty where /proc does not tell."""
    if configured:
        return configured
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return f"{boot}/{namespace}"


def process_start(pid: int) -> int:
    """When process ``pid`` started, in clock ticks since boot (field 22 of /proc/<pid>/stat); 0 if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return int(stat[stat.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def process_gone(pid: int, started: int) -> bool:
    """True when the process ``pid`` that started at ``started`` (clock ticks since boot) no longer runs: no such
    PID, a zombie, or another process under that PID. False when /proc cannot tell (no permission)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    fields = stat[stat.rindex(b")") + 2:].split()
    return fields[0] == b"Z" or int(fields[19]) != started


def gone_here(workers: Sequence[WorkerInfo], me: WorkerInfo) -> list[str]:
    """The ids of the registered workers on this host (``me``'s host identity) whose supervisor is gone."""
    if not me.host_id:
        return []
    return [w.id for w in workers
            if w.id != me.id and w.host_id == me.host_id and w.pid_start and process_gone(w.pid, w.pid_start)]


class Liveness:
    """One supervisor's side of dead-worker detection: ``check`` every ``HEARTBEAT`` seconds."""

    def __init__(self, store: Store, info: WorkerInfo, dead_after: float) -> None:
        self.store = store
        self.info = info
        self.dead_after = dead_after
        self.silence_from = time.monotonic() + RECONNECT  # when the silence rule may apply (see the module doc)
        self.peers: list[WorkerInfo] = []  # the other workers on this host, as the registry last showed them
        self.listed_at = -REGISTRY_EVERY

    def check(self, call: StoreCall) -> list[Job]:
        """Heartbeat and reap through ``call`` (the supervisor's store call, None on an outage); the jobs that went
        back to their queues or failed because their worker was dead."""
        if time.monotonic() >= self.listed_at + REGISTRY_EVERY:
            workers = call(self.store.list_workers, 0.0)
            if workers is None:
                self.silence_from = time.monotonic() + RECONNECT
                return []
            self.peers = [w for w in workers if w.id != self.info.id and w.host_id == self.info.host_id]
            self.listed_at = time.monotonic()
        dead = gone_here(self.peers, self.info)
        now = time.time()
        # Reaped at most HEARTBEAT after the limit: a silence of dead_after in all, from the last heartbeat.
        silent = now - (self.dead_after - HEARTBEAT) if time.monotonic() >= self.silence_from else 0.0
        jobs: list[Job] | None = call(self.store.reap_dead_workers, self.info.id, now, silent, dead)
        if jobs is None:
            self.silence_from = time.monotonic() + RECONNECT
            return []
        self.peers = [w for w in self.peers if w.id not in dead]
        for job in jobs:
            log.warning("Job %s lost its worker %s (declared dead: %s); now %s", job.describe(), job.worker,
                        "its process is gone" if job.worker in dead else "no heartbeat", job.state)
        return jobs
