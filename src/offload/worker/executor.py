"""The executor child: imports job functions and runs them, in its own process group.

Started by the supervisor as ``python -m offload.worker.executor --fd N --slot M``; everything else arrives over
the socket: first an init message, then batches of jobs. The child never talks to the store. It reads the
socket only between jobs (see ``Executor``): the supervisor buffers what it sends and never blocks on a child
that is busy, so the two can never both be blocked on a full socket buffer.

Messages, child -> supervisor: ``("ready", pid, rss)``, ``("start", job_id, t)`` (only with threads > 1,
where the supervisor cannot infer start times), ``("done", [(job_id, report), ...])``, ``("progress", job_id,
progress, meta)``. Supervisor -> child: ``("run", [spec, ...])``, ``("revoke", [job_id, ...])`` (skip these if not
started yet; reported as done with ``skipped``), ``("stop",)``.

The slot (fd M, shared memory; see ``offload.worker.slot``): a single-threaded child writes there which job it
is on before it starts it and again once it returned.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# ``config`` (what the configuration message holds) and ``registry`` (what loads the job modules) are imported with
# the module, so that a forked executor has them from its parent (which needs them too) and a spawned one loads
# them while it waits for that message.
from offload import codec, context, default, funcs, registry, tracing
from offload import config as _config  # noqa: F401
from offload.errors import JobFunctionError, SerializationError, TaskNotFound
from offload.jobs import JobSpec
from offload.retry import Retry, Snooze
from offload.worker.slot import SLOT, SLOT_DONE, SLOT_RUNNING, write_slot
from offload.worker.timeouts import SignalTimer, ThreadTimer, Timer, soft_stop_error
from offload.worker.wire import Wire

log = logging.getLogger("offload.executor")


# Not worth retrying: the same job would fail the same way.
_PERMANENT = (JobFunctionError, SerializationError, TaskNotFound)

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


def failure_report(exc: BaseException) -> dict[str, Any]:
    """The report of an attempt that raised ``exc``; ``Retry`` asks for another try (its countdown and budget)."""
    if isinstance(exc, Snooze):  # not a failure: ``snooze`` makes the worker schedule it again (settle.py)
        return {"ok": False, "snooze": exc.seconds,
                "error": {"type": "Snooze", "message": str(exc), "traceback": None, "reason": "snooze"}}
    if isinstance(exc, Retry):
        error = error_report(exc.exc if exc.exc is not None else exc, "retry")
        error.update(exc.report_fields())
        return {"ok": False, "error": error}
    return {"ok": False, "error": error_report(exc)}


def _permanent_for_task(spec: JobSpec, exc: BaseException) -> bool:
    if spec.task is None:
        return False
    registered = registry.registered().get(spec.task)
    return registered is not None and isinstance(exc, registered.no_retry_on)


def run_job(spec: JobSpec, send_progress: Any = None, timer: Timer | None = None) -> dict[str, Any]:
    """Run one job in this process; the report says ``ok`` and carries the result or the error. With a ``timer``,
    ``JobTimeout`` is raised in the job at ``spec.timeout`` (the soft timeout, see ``offload.worker.timeouts``)."""
    with tracing.run_span(spec) as finish:
        report = _run_job(spec, send_progress, timer)
        finish(report)
    return report


def _run_job(spec: JobSpec, send_progress: Any, timer: Timer | None) -> dict[str, Any]:
    started = time.perf_counter()
    token = context.enter(spec, send_progress)
    try:
        try:
            if timer is not None:
                timer.arm(spec.timeout)
            fn = funcs.job_function(spec.func, spec.task)
            args, kwargs = codec.decode_payload(spec.payload)
            result = fn(*args, **kwargs)
            if isinstance(result, Awaitable):
                import asyncio

                result = asyncio.run(_await(result))
        finally:
            # Inside the outer try: a timeout that fires before this has disarmed it is still the job's failure.
            if timer is not None:
                timer.disarm()
        report: dict[str, Any] = {"ok": True, "result": codec.encode_result(result)}
    except BaseException as exc:  # SystemExit and KeyboardInterrupt from a job are its failure, not ours
        report = failure_report(exc)
        if _permanent_for_task(spec, exc):
            report["error"]["retryable"] = False
        if timer is not None and timer.fired_here():
            soft_stop_error(report["error"], spec.timeout, exc)
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
    """Runs the jobs the supervisor sends, reporting each.

    Single-threaded, jobs run in the main thread (``signal.signal`` and the like work in a job, as they would
    in a script), which also reads the socket: it waits on it when it has nothing to run, so a job sent to an
    idle executor starts in the thread that received it, and between two jobs it takes in whatever has arrived
    (more jobs, revocations). It does not read while a job runs: the supervisor never blocks writing to an
    executor (its writes are buffered), so that cannot deadlock. Threaded, the main thread reads and hands each
    job to the pool."""

    def __init__(self, conn: Wire, threads: int, slot: Any = None) -> None:
        self.conn = conn
        self.threads = threads
        self.slot = slot if threads == 1 else None
        self.slot_version = 0
        self.seq = 0
        self.send_lock = threading.Lock()
        self.last_rss_check = 0.0
        self.revoked: set[str] = set()
        self.outbox: list[tuple[str, dict[str, Any]]] = []
        self.outbox_since = 0.0
        self.waiting: collections.deque[JobSpec] = collections.deque()  # received, not run yet (one thread)
        self.stopping = False
        self.timer: Timer = SignalTimer() if threads == 1 else ThreadTimer()

    def send(self, message: tuple[Any, ...]) -> None:
        with self.send_lock:
            self.conn.send(message)

    def receive(self) -> tuple[Any, ...]:
        """The next run or stop message, waiting for it; revocations are noted on the way."""
        while True:
            try:
                message: tuple[Any, ...] = self.conn.recv()
            except (EOFError, OSError):
                os._exit(0)  # the supervisor is gone: nothing left to report to
            if message[0] != "revoke":
                return message
            self.revoked.update(message[1])

    def _take(self, message: tuple[Any, ...]) -> None:
        if message[0] == "stop":
            self.stopping = True
        else:
            self.waiting.extend(message[1])

    def _take_arrived(self) -> None:
        """Take in, without waiting, every message that has arrived."""
        try:
            while self.conn.poll():
                message = self.conn.recv()
                if message[0] == "revoke":
                    self.revoked.update(message[1])
                else:
                    self._take(message)
        except (EOFError, OSError):
            os._exit(0)

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
        report = run_job(spec, self.progress, self.timer)
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

    def _flush_outbox(self) -> None:
        with self.send_lock:
            if self.outbox:
                batch, self.outbox = self.outbox, []
                self.conn.send(("done", batch))

    def serve(self) -> None:
        self.send(("ready", os.getpid(), _rss_mib()))
        if self.threads > 1:
            self._serve_pool()
            return
        while True:
            if not self.waiting:
                if self.stopping:
                    self._flush_outbox()
                    return
                self._take(self.receive())
                continue
            spec = self.waiting.popleft()
            self.run_and_report(spec, bool(self.waiting))
            self._take_arrived()

    def _serve_pool(self) -> None:
        with ThreadPoolExecutor(self.threads, thread_name_prefix="offload-job") as pool:
            while True:
                message = self.receive()
                if message[0] == "stop":
                    break
                for spec in message[1]:
                    pool.submit(self.run_and_report, spec)


def _options(argv: list[str]) -> tuple[int, int | None, int]:
    """``--fd N [--slot M] --parent PID``: only the supervisor starts this (no argparse: it is on every
    worker's start-up)."""
    values = dict(zip(argv[::2], argv[1::2], strict=False))
    if not {"--fd", "--parent"} <= set(values) or len(argv) % 2 or set(values) - {"--fd", "--slot", "--parent"}:
        sys.exit("usage: python -m offload.worker.executor --fd N [--slot M] --parent PID")
    slot = values.get("--slot")
    return int(values["--fd"]), None if slot is None else int(slot), int(values["--parent"])


def main(argv: list[str] | None = None) -> None:
    run(*_options(sys.argv[1:] if argv is None else argv))


def run(fd: int, slot_fd: int | None, parent: int) -> None:
    """Be an executor on the supervisor's socket ``fd`` (and slot ``slot_fd``) until told to stop: the body of
    a spawned executor's ``main``, and what a forked one runs (``spawn.fork_executor``). ``parent``: the
    supervisor's PID, to notice that it died before ``_die_with_parent`` took effect (not "the parent is PID 1":
    in a container the supervisor often is PID 1)."""
    _die_with_parent()
    if os.getppid() != parent:
        os._exit(0)
    # Ctrl-C in a terminal reaches the whole foreground group; the supervisor decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Wire(socket.socket(fileno=fd))
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
    if init.get("config") is not None:
        # Jobs that publish or enqueue (offload.notify, offload.enqueue) act on the worker's own site. Built on
        # first use: an executor whose jobs never enqueue does not load the store's driver.
        default.configure_lazily(init["config"])
    try:
        registry.load_registry(init.get("imports", []), init.get("contributed"))
    except Exception as exc:  # the supervisor loads them too and says so; one line here, not a traceback
        log.error("Executor (PID %d) cannot load the job modules: %s: %s", os.getpid(), type(exc).__name__, exc)
        os._exit(1)
    slot = None
    if slot_fd is not None:
        import mmap

        slot = mmap.mmap(slot_fd, SLOT.size)
    Executor(conn, int(init.get("threads", 1)), slot).serve()


if __name__ == "__main__":
    main()
