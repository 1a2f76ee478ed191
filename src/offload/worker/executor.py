"""The executor child: imports job functions and runs them, in its own process group.

Started by the supervisor as ``python -m offload.worker.executor --fd N --slot M``; everything else arrives over
the socket: first an init message, then batches of jobs. The child never talks to the store. A reader thread
keeps draining the socket so that the supervisor's writes never block on a child that is busy writing
results (two processes both blocked on a full socket buffer would deadlock).

Messages, child -> supervisor: ``("ready", pid, rss)``, ``("start", job_id, t)`` (only with threads > 1,
where the supervisor cannot infer start times), ``("done", [(job_id, report), ...])``, ``("progress", job_id,
progress, meta)``. Supervisor -> child: ``("run", [spec, ...])``, ``("revoke", [job_id, ...])`` (skip these if not
started yet; reported as done with ``skipped``), ``("stop",)``.

The slot (fd M, shared memory, ``SLOT``): a single-threaded child writes there which job it is on before it
starts it and again once it returned, without a message. Its reports are batched, so the supervisor cannot tell
from them which job is running: a crash or a timeout would be blamed on a job that had finished.
"""

from __future__ import annotations

import argparse
import ctypes
import inspect
import logging
import os
import queue
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from offload import codec, context, funcs
from offload.errors import JobFunctionError, SerializationError, TaskNotFound
from offload.retry import Retry
from offload.worker.wire import Wire

log = logging.getLogger("offload.executor")

# Not worth retrying: the same job would fail the same way.
_PERMANENT = (JobFunctionError, SerializationError, TaskNotFound)

#: The slot: a version (odd while being written), then the seq of the job the child is on (1 for the first job
#: sent to it, skipped ones counted), its state (SLOT_RUNNING, then SLOT_DONE) and its start
#: (time.monotonic(), a system-wide clock). The version makes it a seqlock: the supervisor reads the same even
#: version before and after the fields, or reads again, so it never acts on a half-written slot.
SLOT = struct.Struct("=qqqd")
SLOT_VERSION = struct.Struct("=q")
SLOT_FIELDS = struct.Struct("=qqd")
SLOT_RUNNING, SLOT_DONE = 1, 2


def write_slot(slot: Any, version: int, seq: int, state: int, started: float) -> int:
    """Write the slot as a seqlock writer; returns the new (even) version."""
    slot[0:8] = SLOT_VERSION.pack(version + 1)
    slot[8:32] = SLOT_FIELDS.pack(seq, state, started)
    slot[0:8] = SLOT_VERSION.pack(version + 2)
    return version + 2


def read_slot(slot: Any) -> tuple[int, int, float] | None:
    """(seq, state, started) as last written, or None if no consistent reading came after a few tries."""
    for _ in range(1000):
        (before,) = SLOT_VERSION.unpack_from(slot, 0)
        if before % 2:
            continue
        fields = SLOT_FIELDS.unpack_from(slot, 8)
        (after,) = SLOT_VERSION.unpack_from(slot, 0)
        if before == after:
            return fields
    return None


@dataclass
class JobSpec:
    """What a child needs to run one job (sent over the socket; kept small)."""

    id: str
    func: str | None
    task: str | None
    payload: str
    attempt: int
    max_attempts: int
    queue: str
    title: str | None
    meta: dict[str, Any]


def error_report(exc: BaseException, reason: str = "exception") -> dict[str, Any]:
    cls = type(exc)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    report: dict[str, Any] = {
        "type": name,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(cls, exc, exc.__traceback__)),
        "reason": reason,
    }
    if isinstance(exc, _PERMANENT) or getattr(exc, "retryable", True) is False:
        report["retryable"] = False
    return report


def _resolve(spec: JobSpec) -> Any:
    if spec.task is not None:
        from offload import tasks

        return tasks.lookup(spec.task).fn
    assert spec.func is not None
    return funcs.resolve(spec.func)


def _permanent_for_task(spec: JobSpec, exc: BaseException) -> bool:
    if spec.task is None:
        return False
    from offload import tasks

    registered = tasks.registered().get(spec.task)
    return registered is not None and isinstance(exc, registered.no_retry_on)


def run_job(spec: JobSpec, send_progress: Any = None) -> dict[str, Any]:
    """Run one job in this process; the report says ``ok`` and carries the result or the error."""
    started = time.perf_counter()
    token = context.enter(spec, send_progress)
    try:
        fn = _resolve(spec)
        args, kwargs = codec.decode_payload(spec.payload)
        result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            import asyncio

            result = asyncio.run(_await(result))
        report: dict[str, Any] = {"ok": True, "result": codec.encode_result(result)}
    except Retry as exc:
        cause = exc.exc if exc.exc is not None else exc
        report = {"ok": False, "error": error_report(cause, "retry")}
        report["error"]["countdown"] = exc.countdown
        report["error"]["max_retries"] = exc.max_retries
    except BaseException as exc:  # SystemExit and KeyboardInterrupt from a job are its failure, not ours
        report = {"ok": False, "error": error_report(exc)}
        if _permanent_for_task(spec, exc):
            report["error"]["retryable"] = False
    finally:
        context.leave(token)
    report["duration"] = time.perf_counter() - started
    return report


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _rss_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1048576
    except (OSError, ValueError, IndexError):
        return 0.0


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the supervisor dies, so no job runs on unsupervised."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


class Executor:
    def __init__(self, conn: Wire, threads: int, slot: Any = None) -> None:
        self.conn = conn
        self.threads = threads
        self.slot = slot if threads == 1 else None
        self.slot_version = 0
        self.seq = 0
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.send_lock = threading.Lock()
        self.last_rss_check = 0.0
        self.revoked: set[str] = set()
        self.outbox: list[tuple[str, dict[str, Any]]] = []
        self.outbox_since = 0.0

    def send(self, message: tuple[Any, ...]) -> None:
        with self.send_lock:
            self.conn.send(message)

    def read_forever(self) -> None:
        try:
            while True:
                message = self.conn.recv()
                if message[0] == "revoke":
                    self.revoked.update(message[1])
                else:
                    self.inbox.put(message)
        except (EOFError, OSError):
            os._exit(0)  # the supervisor is gone: nothing left to report to

    def progress(self, job_id: str, progress: dict[str, Any] | None, meta: dict[str, Any] | None) -> None:
        self.send(("progress", job_id, progress, meta))

    def run_and_report(self, spec: JobSpec, more_waiting: bool = False) -> None:
        """Run one job and report it. Reports are batched while more jobs wait here (short jobs), at most
        5 ms or 64 reports, so a busy child writes one message per batch instead of one per job."""
        self.seq += 1
        if spec.id in self.revoked:
            self.revoked.discard(spec.id)
            self._report(spec.id, {"ok": False, "skipped": True}, more_waiting)
            return
        if self.threads > 1:
            self.send(("start", spec.id, time.time()))
        elif self.slot is not None:
            self.slot_version = write_slot(self.slot, self.slot_version, self.seq, SLOT_RUNNING, time.monotonic())
        report = run_job(spec, self.progress)
        now = time.monotonic()
        if self.slot is not None:
            self.slot_version = write_slot(self.slot, self.slot_version, self.seq, SLOT_DONE, now)
        report["ended"] = now  # CLOCK_MONOTONIC is system-wide: the supervisor can compare it with its own
        if now - self.last_rss_check > 1.0:
            self.last_rss_check = now
            report["rss"] = _rss_mib()
        # A failure is reported at once: held in the outbox, it would die with the executor if the next job
        # crashed it, and the job would be recorded with a lost result instead of its own error.
        self._report(spec.id, report, more_waiting and report["ok"])

    def _report(self, job_id: str, report: dict[str, Any], more_waiting: bool) -> None:
        with self.send_lock:
            if not self.outbox:
                self.outbox_since = time.monotonic()
            self.outbox.append((job_id, report))
            if more_waiting and len(self.outbox) < 64 and time.monotonic() - self.outbox_since < 0.005:
                return
            batch, self.outbox = self.outbox, []
            self.conn.send(("done", batch))

    def serve(self) -> None:
        threading.Thread(target=self.read_forever, name="offload-reader", daemon=True).start()
        self.send(("ready", os.getpid(), _rss_mib()))
        pool = ThreadPoolExecutor(self.threads, thread_name_prefix="offload-job") if self.threads > 1 else None
        while True:
            message = self.inbox.get()
            if message[0] == "stop":
                break
            specs = message[1]
            for i, spec in enumerate(specs):
                if pool is None:
                    self.run_and_report(spec, i + 1 < len(specs) or not self.inbox.empty())
                else:
                    pool.submit(self.run_and_report, spec)
        if pool is not None:
            pool.shutdown(wait=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="offload-executor")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--slot", type=int)
    opts = parser.parse_args(argv)
    _die_with_parent()
    if os.getppid() == 1:
        os._exit(0)
    # Ctrl-C in a terminal reaches the whole foreground group; the supervisor decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Wire(socket.socket(fileno=opts.fd))
    try:
        init = conn.recv()  # the supervisor spawns executors early and configures them once it is set up
    except (EOFError, OSError):
        os._exit(0)  # it gave up before that (a bad option, the store unreachable): nothing to do
    sys.path[:] = init["sys_path"]
    logging.basicConfig(
        level=init.get("log_level", "INFO"),
        format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
        stream=sys.stderr,
    )
    import offload
    from offload import tasks

    if init.get("config") is not None:
        # Jobs that publish or enqueue (offload.notify, offload.enqueue) act on the worker's own site. Built on
        # first use: an executor whose jobs never enqueue does not load the store's driver.
        offload.configure_lazily(init["config"])
    tasks.load_registry(init.get("imports", []), init.get("contributed"))
    slot = None
    if opts.slot is not None:
        import mmap

        slot = mmap.mmap(opts.slot, SLOT.size)
    Executor(conn, int(init.get("threads", 1)), slot).serve()


if __name__ == "__main__":
    main()
