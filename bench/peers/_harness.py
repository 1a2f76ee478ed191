"""The shared driver of the peer adapters: CLI, worker process control, completion polling and timing.

Every adapter (``<system>_bench.py``) runs inside its own system's virtual environment, so this module uses
the standard library only. An adapter subclasses :class:`Adapter` with the few system-specific verbs
(reset, enqueue, count what is left, the worker command line); the workloads themselves are written once,
here, so each system is measured the same way.

One invocation runs one cell and prints exactly one JSON line on stdout::

    python bench/peers/rq_bench.py drain --store redis --n 2000 --workdir bench/.work/x/cell
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any

PEERS_DIR = os.path.dirname(os.path.abspath(__file__))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
PG_DSN_BASE = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432")

#: How often the driver asks the system how much work is left (seconds).
POLL_INTERVAL = 0.02
#: Concurrency given to a worker for drain, latency and check (where the system has the notion).
CONCURRENCY = 2
#: Concurrent job slots given to a worker for the io workload.
IO_SLOTS = int(os.environ.get("BENCH_IO_SLOTS", "32"))


def slots(mode: str) -> int:
    """Job slots of one worker process for drain, latency and check (CONCURRENCY) or scale (1: the scale
    workload runs K worker processes of one slot each, see _scale.py)."""
    return 1 if mode == "scale" else CONCURRENCY


class NotSupported(Exception):
    """The system has no such feature (recorded as "n/a", not as an error)."""


class CellError(Exception):
    """The cell could not be measured; the message says why."""


def pg_dsn(database: str) -> str:
    return f"{PG_DSN_BASE}/{database}"


def ensure_pg_database(psycopg: Any, database: str) -> None:
    """Create ``database`` if it does not exist (the benchmark owns every ``bench_*`` database)."""
    with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{database}"')


class Adapter:
    """What a system must provide. Job kinds: ``noop()``, ``sleep()`` (10 ms of I/O wait),
    ``stamp(fifo, sample)`` (writes ``"<sample> <time.time()>"`` to a FIFO as its first act),
    ``mark(path)`` (appends one line to a file)."""

    system = "?"
    stores: Sequence[str] = ()
    #: Distributions whose versions are reported.
    packages: Sequence[str] = ()

    def __init__(self, store: str, workdir: str) -> None:
        if store not in self.stores:
            raise CellError(f"{self.system} has no {store!r} store here (have: {', '.join(self.stores)})")
        self.store = store
        self.workdir = workdir

    # -- what each system implements ----------------------------------------------------------------------
    def reset(self) -> None:
        """Remove every job and trace of earlier cells from this system's store."""
        raise NotImplementedError

    def enqueue_serial(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> None:
        """Enqueue one job per item, one call at a time, the way an application would."""
        raise NotImplementedError

    def enqueue_bulk(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> None:
        """Enqueue all items with the system's bulk API; raise NotSupported if it has none."""
        raise NotSupported(f"{self.system} has no bulk enqueue")

    def enqueue_one(self, kind: str, args: tuple[Any, ...]) -> None:
        self.enqueue_serial(kind, [args])

    def fill(self, kind: str, args_list: Sequence[tuple[Any, ...]]) -> str:
        """Put a backlog in place before a worker starts (not timed): the bulk API where there is one, else
        one call at a time; an adapter may override this with something faster. Returns how it was done."""
        try:
            self.enqueue_bulk(kind, args_list)
            return "bulk"
        except NotSupported:
            self.enqueue_serial(kind, args_list)
            return "serial"

    def remaining(self, total: int) -> int:
        """How many of the ``total`` jobs enqueued since reset have not finished yet."""
        raise NotImplementedError

    def worker_command(self, mode: str) -> tuple[list[str], dict[str, str], str]:
        """(argv, extra environment, human description) of ONE worker process for ``mode``:
        ``"drain"`` (noop jobs, concurrency 2), ``"io"`` (sleep jobs, its best I/O mode), ``"latency"`` or
        ``"scale"`` (one job slot: the scale workload starts several such processes)."""
        raise NotImplementedError

    def versions(self) -> dict[str, str]:
        from importlib import metadata

        found = {}
        for name in self.packages:
            try:
                found[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                found[name] = "missing"
        return found

    def server_info(self) -> dict[str, str]:
        return {}

    def close(self) -> None:
        pass

    # -- helpers for subclasses -------------------------------------------------------------------------
    def python(self) -> str:
        return os.path.abspath(sys.executable)

    def script(self, name: str) -> str:
        """Path of a console script installed in this venv."""
        return os.path.join(os.path.dirname(os.path.abspath(sys.executable)), name)


# -- worker process control ----------------------------------------------------------------------------------
class WorkerProcess:
    """One worker started in its own process group, output to a log file, stopped with its whole group."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: str) -> None:
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env)
        full_env["PYTHONPATH"] = PEERS_DIR + os.pathsep + full_env.get("PYTHONPATH", "")
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            argv, env=full_env, cwd=PEERS_DIR, stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # Children of the worker (forked horses, pool processes) may outlive the parent: end the group.
        self._signal(signal.SIGKILL)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def tail(self, lines: int = 15) -> str:
        self.log.flush()
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()[-6000:]
        except OSError:
            return ""
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def wait_until_done(
    adapter: Adapter, worker: WorkerProcess, total: int, deadline: float, t0: float, cap: float = 0.0
) -> dict[str, Any]:
    """Poll ``adapter.remaining`` every POLL_INTERVAL until it is 0, or until ``cap`` seconds after ``t0``
    (0: no cap); return how many jobs were done and when, relative to ``t0``."""
    first_progress = None
    while True:
        left = adapter.remaining(total)
        now = time.perf_counter()
        if first_progress is None and left < total:
            first_progress = now - t0
        if left <= 0:
            return {"seconds": now - t0, "done": total, "first_progress_s": first_progress}
        if cap and now - t0 >= cap and left < total:
            return {"seconds": now - t0, "done": total - left, "first_progress_s": first_progress, "capped": True}
        if not worker.alive():
            raise CellError(
                f"worker exited with code {worker.proc.returncode} with {left} of {total} jobs left; "
                f"log tail:\n{worker.tail()}"
            )
        if now > deadline:
            raise CellError(f"time budget spent with {left} of {total} jobs left; log tail:\n{worker.tail()}")
        time.sleep(POLL_INTERVAL)


# -- workloads ------------------------------------------------------------------------------------------------
def _run_backlog(adapter: Adapter, kind: str, mode: str, n: int, deadline: float, cap: float) -> dict[str, Any]:
    adapter.reset()
    filled = adapter.fill(kind, [()] * n)
    before = adapter.remaining(n)
    if before != n:
        raise CellError(f"expected {n} jobs waiting before the worker starts, the system reports {before}")
    argv, env, desc = adapter.worker_command(mode)
    t0 = time.perf_counter()
    worker = WorkerProcess(argv, env, os.path.join(adapter.workdir, f"worker-{mode}.log"))
    try:
        timing = wait_until_done(adapter, worker, n, deadline, t0, cap)
    finally:
        worker.stop()
    return {
        "n": n,
        "jobs_per_s": timing["done"] / timing["seconds"],
        "seconds": timing["seconds"],
        "done": timing["done"],
        "capped": timing.get("capped", False),
        "first_progress_s": timing["first_progress_s"],
        "filled_with": filled,
        "worker": desc,
        "worker_argv": argv,
    }


def workload_drain(adapter: Adapter, n: int, deadline: float, cap: float = 0.0) -> dict[str, Any]:
    return _run_backlog(adapter, "noop", "drain", n, deadline, cap)


def workload_io(adapter: Adapter, n: int, deadline: float, cap: float = 0.0) -> dict[str, Any]:
    return _run_backlog(adapter, "sleep", "io", n, deadline, cap)


def workload_enqueue(adapter: Adapter, n: int, deadline: float, cap: float = 0.0) -> dict[str, Any]:
    adapter.reset()
    adapter.enqueue_serial("noop", [()])  # warm up connections and lazy imports, not timed
    done = 0
    t0 = time.perf_counter()
    while done < n:
        # Chunks of 100 calls, so a cap can end the measurement; the calls are one at a time all the same.
        chunk = min(100, n - done)
        adapter.enqueue_serial("noop", [()] * chunk)
        done += chunk
        if cap and time.perf_counter() - t0 >= cap:
            break
    serial = time.perf_counter() - t0
    left = adapter.remaining(done + 1)
    if left != done + 1:
        raise CellError(f"enqueued {done + 1} jobs but the system reports {left} waiting")
    out: dict[str, Any] = {"n": n, "done": done, "capped": done < n, "jobs_per_s": done / serial, "seconds": serial}
    adapter.reset()
    args_list = [()] * n
    try:
        t0 = time.perf_counter()
        adapter.enqueue_bulk("noop", args_list)
        bulk = time.perf_counter() - t0
    except NotSupported as exc:
        out["bulk_jobs_per_s"] = None
        out["bulk_note"] = str(exc)
    else:
        left = adapter.remaining(n)
        if left != n:
            raise CellError(f"bulk-enqueued {n} jobs but the system reports {left} waiting")
        out["bulk_jobs_per_s"] = n / bulk
        out["bulk_seconds"] = bulk
    return out


class _FifoReader:
    def __init__(self, path: str) -> None:
        if os.path.exists(path):
            os.unlink(path)
        os.mkfifo(path)
        self.path = path
        # O_RDWR keeps a writer attached, so the FIFO never reports EOF between jobs and writers never block.
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        self.buffer = b""

    def wait_for(self, sample: str, timeout: float) -> float:
        end = time.monotonic() + timeout
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                got, _, stamp = line.decode().partition(" ")
                if got == sample:
                    return float(stamp)
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(sample)
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                self.buffer += os.read(self.fd, 65536)

    def close(self) -> None:
        os.close(self.fd)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


#: Latency samples taken before a cap may end the sampling.
MIN_SAMPLES = 10


def workload_latency(adapter: Adapter, n: int, deadline: float, cap: float = 0.0) -> dict[str, Any]:
    adapter.reset()
    fifo = _FifoReader(os.path.join(adapter.workdir, "stamps.fifo"))
    argv, env, desc = adapter.worker_command("latency")
    worker = WorkerProcess(argv, env, os.path.join(adapter.workdir, "worker-latency.log"))
    rng = random.Random(1234)
    samples: list[float] = []
    try:
        t_start = time.perf_counter()
        # The first job also waits for the worker to boot; it is not a sample.
        adapter.enqueue_one("stamp", (fifo.path, "warmup"))
        try:
            fifo.wait_for("warmup", max(1.0, deadline - time.perf_counter()))
        except TimeoutError:
            raise CellError(f"warm-up job never started; worker log tail:\n{worker.tail()}") from None
        boot = time.perf_counter() - t_start
        t_sampling = time.perf_counter()
        for i in range(n):
            if cap and i >= MIN_SAMPLES and time.perf_counter() - t_sampling >= cap:
                break
            # A random pause (0-20 ms) lets the worker go back to waiting and keeps samples out of phase
            # with any polling period.
            time.sleep(rng.uniform(0.0, 0.02))
            sample = str(i)
            t_enqueue = time.time()
            adapter.enqueue_one("stamp", (fifo.path, sample))
            try:
                started = fifo.wait_for(sample, min(10.0, max(0.5, deadline - time.perf_counter())))
            except TimeoutError:
                raise CellError(f"sample {i} did not start within 10 s; worker log tail:\n{worker.tail()}") from None
            samples.append(started - t_enqueue)
    finally:
        worker.stop()
        fifo.close()
    ms = [s * 1000 for s in samples]
    return {
        "n": len(samples),
        "capped": len(samples) < n,
        "p50_ms": _percentile(ms, 0.50),
        "p99_ms": _percentile(ms, 0.99),
        "mean_ms": sum(ms) / len(ms),
        "max_ms": max(ms),
        "min_ms": min(ms),
        "boot_s": boot,
        "worker": desc,
        "worker_argv": argv,
    }


def workload_check(adapter: Adapter, n: int, deadline: float, cap: float = 0.0) -> dict[str, Any]:
    """Correctness, not speed: every job runs exactly once, and "nothing left" is only reported once
    every job body has run (so the completion detection the timed workloads rely on is sound)."""
    adapter.reset()
    marks = os.path.join(adapter.workdir, "marks.txt")
    open(marks, "w").close()
    adapter.enqueue_serial("mark", [(marks,)] * n)
    before = adapter.remaining(n)
    if before != n:
        raise CellError(f"expected {n} jobs waiting, the system reports {before}")
    argv, env, desc = adapter.worker_command("drain")
    t0 = time.perf_counter()
    worker = WorkerProcess(argv, env, os.path.join(adapter.workdir, "worker-check.log"))
    try:
        wait_until_done(adapter, worker, n, deadline, t0)
        at_done = _count_lines(marks)
        time.sleep(0.5)
        later = _count_lines(marks)
    finally:
        worker.stop()
    if at_done != n or later != n:
        raise CellError(
            f"{n} jobs enqueued; {at_done} had run when the system reported none left, {later} half a second later"
        )
    return {"n": n, "executed": later, "worker": desc}


def _count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


WORKLOADS = {
    "drain": workload_drain,
    "enqueue": workload_enqueue,
    "latency": workload_latency,
    "io": workload_io,
    "check": workload_check,
}


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(adapter_class: type[Adapter]) -> None:
    parser = argparse.ArgumentParser(description=f"Benchmark cell runner for {adapter_class.system}")
    parser.add_argument("workload", choices=[*WORKLOADS, "scale", "info"])
    parser.add_argument("--store", required=True)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds this cell may take")
    parser.add_argument("--cap", type=float, default=0.0,
                        help="drain/io: stop measuring after this many seconds and report the rate so far; "
                             "latency: stop sampling after this many seconds (at least 10 samples); 0: no cap")
    parser.add_argument("--workers", type=int, default=1, help="scale: worker processes (one job slot each)")
    opts = parser.parse_args()
    deadline = time.perf_counter() + opts.budget - 5.0
    workdir = opts.workdir or os.path.join(PEERS_DIR, "..", ".work", "adhoc", f"{adapter_class.system}-{opts.store}")
    os.makedirs(workdir, exist_ok=True)
    workdir = os.path.abspath(workdir)

    # run.py ends a cell with SIGTERM: turn it into an exception so the worker is stopped in `finally`.
    signal.signal(signal.SIGTERM, _interrupt)
    result: dict[str, Any] = {"system": adapter_class.system, "store": opts.store, "workload": opts.workload}
    adapter = None
    try:
        adapter = adapter_class(opts.store, workdir)
        if opts.workload in ("info", "check"):
            result.update(versions=adapter.versions(), server=adapter.server_info(), python=sys.version.split()[0])
        if opts.workload == "scale":
            from _scale import workload_scale

            result.update(workload_scale(adapter, opts.n, deadline, opts.cap, opts.workers))
        elif opts.workload != "info":
            result.update(WORKLOADS[opts.workload](adapter, opts.n, deadline, opts.cap))
        result["ok"] = True
    except CellError as exc:
        result.update(ok=False, error=str(exc))
    except KeyboardInterrupt:
        result.update(ok=False, error="interrupted (time budget spent)")
    except Exception as exc:
        result.update(ok=False, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-3000:])
    finally:
        if adapter is not None:
            try:
                adapter.close()
            except Exception:
                pass
    print(json.dumps(result), flush=True)
    sys.exit(0 if result["ok"] else 1)
