"""Job functions used by the tests: importable by workers, as job functions must be."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from offload import current_job


def noop(*args: Any, **kwargs: Any) -> None:
    return None


def add(a: float, b: float) -> float:
    return a + b


def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


def fail(message: str = "boom") -> None:
    raise ValueError(message)


def ledger(path: str, tag: str = "") -> int:
    """Append one line per execution: job id, attempt, pid (O_APPEND writes this small are atomic)."""
    job = current_job()
    line = f"{job.id if job else '-'} {job.attempt if job else 0} {os.getpid()} {tag}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return os.getpid()


def ledger_then_sleep(path: str, seconds: float) -> str:
    ledger(path, "start")
    time.sleep(seconds)
    ledger(path, "end")
    return "slept"


def span(path: str, tag: str, seconds: float) -> str:
    """Sleep ``seconds`` and append one line: ``tag``, start and end time (wall clock), pid. An independent
    ledger of when job bodies ran, for counting how many ran at once."""
    start = time.time()
    time.sleep(seconds)
    line = f"{tag} {start!r} {time.time()!r} {os.getpid()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return tag


def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


def ignore_sigterm_and_sleep(seconds: float) -> str:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)
    return "slept"


def spawn_grandchild(pidfile: str, seconds: float) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(pidfile, "w") as f:
        f.write(str(proc.pid))
    time.sleep(seconds)


def exit_hard(code: int) -> None:
    os._exit(code)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def raise_system_exit() -> None:
    raise SystemExit(4)


def progress(steps: int) -> str:
    job = current_job()
    assert job is not None
    for i in range(1, steps + 1):
        job.set_progress(i, steps, "steps")
    return "done"


def unserialisable_result() -> object:
    return object()


def set_signal_handler() -> str:
    """Installs a signal handler, which Python allows only in the main thread (libraries that time their own
    calls with SIGALRM do this): a single-threaded executor must run jobs there."""
    previous = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, previous)
    return threading.current_thread().name


def big(payload: str, size: int) -> str:
    """Takes a large argument and returns a large result."""
    return payload[:1] * size


def process_facts() -> dict[str, Any]:
    """How the executor running this was started: its command line, parent, session and stdin."""
    with open("/proc/self/cmdline", "rb") as f:
        cmdline = f.read().split(b"\0")
    return {"pid": os.getpid(), "ppid": os.getppid(), "sid": os.getsid(0),
            "cmdline": [part.decode() for part in cmdline if part], "stdin": os.readlink("/proc/self/fd/0"),
            "drivers": sorted(m for m in sys.modules if m.split(".")[0] in ("redis", "hiredis", "psycopg"))}


def at_exit_write(path: str) -> int:
    """Register an atexit handler that writes this process's PID to ``path`` when the process ends."""
    import atexit

    def write() -> None:
        with open(path, "w") as f:
            f.write(str(os.getpid()))

    atexit.register(write)
    return os.getpid()


def fail_once(marker: str) -> str:
    """Fails the first time (leaving ``marker``), succeeds after."""
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("failed once")
        raise ValueError("the first attempt fails")
    return "second time lucky"


def progress_then_sleep(done: int, total: int, seconds: float) -> str:
    """Report ``done`` of ``total`` steps, then stay running (a job for the dashboard's workers page)."""
    job = current_job()
    assert job is not None
    job.set_progress(done, total, "steps")
    time.sleep(seconds)
    return "slept"


def snooze_times(ledger_path: str, times: int, seconds: float) -> int:
    """Writes a ledger line per run (``ledger``) and snoozes ``seconds`` for the first ``times`` runs; returns
    the attempt number it finished on."""
    import offload

    ledger(ledger_path, "run")
    with open(ledger_path) as f:
        runs = len(f.read().splitlines())
    if runs <= times:
        raise offload.Snooze(seconds)
    job = current_job()
    return job.attempt if job else 0
