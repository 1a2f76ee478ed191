"""worker/liveness.py: how a worker tells that another one on its host is gone, with real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from offload.jobs import WorkerInfo
from offload.stores import open_store
from offload.worker.liveness import REGISTRY_EVERY, Liveness, gone_here, host_identity, process_gone, process_start


def info(worker_id: str, pid: int, host_id: str, pid_start: int) -> WorkerInfo:
    now = time.time()
    return WorkerInfo(worker_id, "host", pid, ["default"], 1, now, now, host_id=host_id, pid_start=pid_start)


def test_host_identity_is_the_boot_id_and_pid_namespace_unless_configured() -> None:
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read().strip()
    assert host_identity() == f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    assert host_identity("rack-2") == "rack-2"


def test_a_process_is_gone_once_dead_or_its_pid_reused() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = process_start(child.pid)
        assert started > 0 and started == process_start(child.pid)
        assert not process_gone(child.pid, started)
        assert process_gone(child.pid, started + 1), "another process under the same PID"
        child.kill()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped yet: a zombie
        assert process_gone(child.pid, started)
    finally:
        child.kill()
        child.wait()
    assert process_gone(child.pid, started), "reaped: no such PID"


def test_only_workers_on_this_host_are_judged_by_their_pid() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start(child.pid)
    child.wait()
    me = info("me", os.getpid(), "host-a", process_start(os.getpid()))
    workers = [
        me,
        info("gone-here", child.pid, "host-a", started),
        info("gone-elsewhere", child.pid, "host-b", started),
        info("alive-here", os.getppid(), "host-a", process_start(os.getppid())),
        info("unknown-start", child.pid, "host-a", 0),  # a worker that did not say when it started (CKAN's)
    ]
    assert gone_here(workers, me) == ["gone-here"]
    assert gone_here(workers, info("nowhere", os.getpid(), "", 0)) == []


def test_a_check_reaps_a_gone_worker_on_this_host_and_heartbeats() -> None:
    store = open_store("memory://")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start(child.pid)
    child.wait()
    me = info("me", os.getpid(), "host-a", process_start(os.getpid()))
    store.register_worker(me)
    store.register_worker(info("gone", child.pid, "host-a", started))
    store.register_worker(info("silent", os.getppid(), "host-b", 0))
    liveness = Liveness(store, me, dead_after=10.0)
    assert liveness.check(lambda fn, *args: fn(*args)) == []
    assert [w.id for w in store.list_workers(0.0)] == ["me", "silent"], "the gone one reaped, at once"
    # The registry is read every REGISTRY_EVERY seconds; the processes of the workers on this host at every check.
    store.register_worker(info("gone-later", child.pid, "host-a", started))
    liveness.check(lambda fn, *args: fn(*args))
    assert "gone-later" in [w.id for w in store.list_workers(0.0)]
    liveness.listed_at = time.monotonic() - REGISTRY_EVERY
    liveness.check(lambda fn, *args: fn(*args))
    assert "gone-later" not in [w.id for w in store.list_workers(0.0)]
    # Silence is judged only once every live worker has had the time to reconnect after this one's start or
    # outage: a worker silent for a minute is still there right after the start...
    silent = store.list_workers(0.0)[1]
    silent.last_seen = time.time() - 60
    store.register_worker(silent)
    liveness.check(lambda fn, *args: fn(*args))
    assert [w.id for w in store.list_workers(0.0)] == ["me", "silent"]
    # ... and reaped once that time is over.
    liveness.silence_from = time.monotonic()
    liveness.check(lambda fn, *args: fn(*args))
    assert [w.id for w in store.list_workers(0.0)] == ["me"]
    # An outage (the call returns None) holds the silence rule off again.
    liveness.check(lambda fn, *args: None)
    assert liveness.silence_from > time.monotonic() + 5
