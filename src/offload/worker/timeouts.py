"""Soft timeouts: at its time limit a job gets ``JobTimeout`` raised inside it, so that its ``finally`` blocks and
``except`` clauses run; the supervisor (or ``JobRunner``) kills the executor's process group if the job is still
running ``offload.jobs.timeout_grace`` seconds later.

The exception is raised by the executor process itself, so every executor has it, however it was started. The
class is ``context.timeout_exception()`` (``offload.JobTimeout`` unless an integration registered a subclass), raised
with a message naming the limit. Two ways, by where the job runs:

- ``SignalTimer``: a single-threaded executor runs its job in the main thread; ``setitimer(ITIMER_REAL)`` sends
  SIGALRM at the limit and the handler raises the exception. A signal interrupts blocking calls (``time.sleep``,
  a socket read, even libc's ``sleep()`` called through ctypes), so the job sees it at once. A job that installs
  its own SIGALRM handler, calls ``signal.alarm()`` or blocks SIGALRM gets no soft timeout: the kill applies.
- ``ThreadTimer``: under ``--threads`` a watchdog thread raises the exception asynchronously in the job's thread
  (``PyThreadState_SetAsyncExc``). Python delivers it when that thread next runs Python code: a thread blocked in
  a system call or in C gets it when the call returns, or is killed at limit + grace.

Both are armed and disarmed around the job's own code only (``executor.run_job``), and neither raises once
disarmed, so the exception never escapes into the executor's own code.
"""

from __future__ import annotations

import ctypes
import math
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from offload import context
from offload.errors import JobTimeout

# signal.getsignal wraps CPython's C function to turn its answer into an enum member: 2.3 us a call against 0.18 us
# for the C function itself (measured here), and it is asked once per job.
try:
    from _signal import getsignal as _c_getsignal  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # another Python
    _c_getsignal = signal.getsignal
_handler_of: Callable[[int], object] = _c_getsignal


def timeout_message(limit: float) -> str:
    return f"the job reached its time limit of {limit:g} s"


def soft_stop_error(error: dict[str, Any], limit: float | None, exc: BaseException) -> None:
    """Mark the error report of a job that ended with an exception after its soft timeout fired."""
    limit_text = f"{limit:g} s" if limit is not None else "limit"
    error["reason"] = "timeout"
    error["timeout"] = "soft"
    if isinstance(exc, JobTimeout):
        error["message"] = (f"the job ran longer than its timeout of {limit_text}: {type(exc).__name__} was raised in "
                            "it and it stopped (soft timeout)")
    else:
        after = f"raised after the job ran longer than its timeout of {limit_text}"
        error["message"] = f"{error.get('message', '')} ({after})"


class SignalTimer:
    """The soft timeout of a job running in the main thread (single-threaded executors).

    One system call per job: arming replaces whatever the timer held, and disarming only tells the handler to do
    nothing, so a timer left over from a job that ended in time fires, if ever, into the executor's own wait for
    work (which resumes: PEP 475) or is replaced by the next job's. A job without a limit cancels it first."""

    def __init__(self) -> None:
        self.armed = False
        self.fired = False
        self.pending = False  # the interval timer may still be counting down
        self.limit = 0.0
        self.handler = self._fire  # one bound method, so that "is it still ours" is an identity check

    def arm(self, limit: float | None) -> None:
        self.fired = False
        if limit is None or limit <= 0:
            if self.pending:
                signal.setitimer(signal.ITIMER_REAL, 0)
                self.pending = False
            return
        if _handler_of(signal.SIGALRM) is not self.handler:  # first job, or a job replaced it
            signal.signal(signal.SIGALRM, self.handler)
        self.limit = limit
        self.armed = self.pending = True
        signal.setitimer(signal.ITIMER_REAL, limit)

    def disarm(self) -> None:
        self.armed = False

    def fired_here(self) -> bool:
        """Whether the exception was raised in the job that ran last."""
        return self.fired

    def _fire(self, signum: int, frame: object) -> None:
        self.pending = False
        if self.armed:  # a signal that arrives after the job returned is dropped
            self.armed = False
            self.fired = True
            raise context.timeout_exception()(timeout_message(self.limit))


_async_classes: dict[tuple[type[JobTimeout], str], type[JobTimeout]] = {}


def _async_class(cls: type[JobTimeout], message: str) -> type[JobTimeout]:
    """``cls`` as CPython raises an asynchronous exception: instantiated without arguments. A subclass that looks
    the same (name, module) and passes ``message`` on, so the job sees ``cls(message)`` as with a signal."""
    key = (cls, message)
    found = _async_classes.get(key)
    if found is None:
        def __init__(self: JobTimeout, *args: Any) -> None:
            cls.__init__(self, message)

        found = type(cls.__name__, (cls,), {"__init__": __init__, "__module__": cls.__module__,
                                            "__qualname__": cls.__qualname__, "__doc__": cls.__doc__})
        _async_classes[key] = found
    return found


def _raise_in_thread(ident: int, cls: type[BaseException] | None) -> None:
    """Raise ``cls`` in thread ``ident`` when it next runs Python code (None: cancel one not delivered yet)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None if cls is None else ctypes.py_object(cls))


class ThreadTimer:
    """The soft timeouts of jobs running in pool threads (``--threads``): one watchdog thread for all of them."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.deadlines: dict[int, tuple[float, float]] = {}  # thread ident -> (monotonic deadline, limit)
        self.fired: set[int] = set()
        self.wakes_at = math.inf
        self.watchdog: threading.Thread | None = None

    def arm(self, limit: float | None) -> None:
        ident = threading.get_ident()
        with self.cond:
            self.fired.discard(ident)
            if limit is None or limit <= 0:
                return
            deadline = time.monotonic() + limit
            self.deadlines[ident] = (deadline, limit)
            if self.watchdog is None:
                self.watchdog = threading.Thread(target=self._watch, name="offload-timeouts", daemon=True)
                self.watchdog.start()
            elif deadline < self.wakes_at:
                self.cond.notify()

    def disarm(self) -> None:
        ident = threading.get_ident()
        with self.cond:
            self.deadlines.pop(ident, None)
            if ident in self.fired:
                _raise_in_thread(ident, None)  # the job is over: an exception not delivered yet must not follow it

    def fired_here(self) -> bool:
        return threading.get_ident() in self.fired

    def _watch(self) -> None:
        with self.cond:
            while True:
                now = time.monotonic()
                for ident, (deadline, limit) in list(self.deadlines.items()):
                    if deadline <= now:
                        del self.deadlines[ident]
                        self.fired.add(ident)
                        _raise_in_thread(ident, _async_class(context.timeout_exception(), timeout_message(limit)))
                self.wakes_at = min((d for d, _ in self.deadlines.values()), default=math.inf)
                self.cond.wait(None if self.wakes_at == math.inf else self.wakes_at - now)


Timer = SignalTimer | ThreadTimer
