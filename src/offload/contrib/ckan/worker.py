"""CKAN's background job worker, on offload: ``Worker(queues).work(burst=..., max_idle_time=...)``.

Like CKAN's RQ worker it takes one job at a time and hands it through two override points:
``execute_job(job, queue)`` runs in the process that called ``work()`` (it releases CKAN's database
connections, calls ``IForkObserver.before_fork()``, logs, and runs the job in a job process), and
``perform_job(job, queue)`` runs the job function in whichever process calls it. The job process is a fork of the
worker's process (``job_process``), made as RQ makes its work horse: after the database-safety steps, so the job
sees the worker's live configuration and plugins; it is killed when a job overruns its timeout, is canceled, or
at a cold shutdown, and replaced by a new fork for the next job.

A job deleted while it runs (``job.delete()``, ``job_cancel``, or replaced by a job with its id) is not stopped, as
with RQ: it runs to its end and its outcome is dropped. A job canceled through offload (``offload cancel``) is
stopped.

Claims are leased and the lease is extended while the job runs, so a worker that dies loses its job to
another worker instead of leaving it stuck. Logging follows CKAN: on the ``ckan.lib.jobs`` logger, four INFO
lines (worker started, job started, job finished, worker stopped) and an ERROR with the exception for a failed
job, all from the process that called ``work()``; offload's own worker log lines are left out meanwhile.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any

from ckan import plugins

from offload import codec, context
from offload.app import Offload
from offload.contrib.ckan.job_process import ExecutorRun, JobFailed
from offload.contrib.ckan.rq_job import Job, running
from offload.contrib.ckan.rq_queue import Queue
from offload.contrib.ckan.site import DEFAULT_QUEUE_NAME, site_app
from offload.errors import StoreUnavailable
from offload.jobs import CANCELED, Outcome, WorkerInfo, check_queue_name
from offload.jobs import Job as Record
from offload.schedule import Scheduler, all_schedules
from offload.version import __version__
from offload.worker.runner import failure_report, outcome_for

log = logging.getLogger("ckan.lib.jobs")
debug = logging.getLogger("offload.contrib.ckan")


class _Silence(logging.Filter):
    """Drops the records of offload's own worker logger (CKAN's lines replace them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


class Worker:
    """A CKAN background job worker on the site's offload store.

    ``queues`` is a queue name, a list of names (earlier queues first), or None for ``"default"``.
    """

    def __init__(self, queues: str | Iterable[str] | None = None, name: str | None = None) -> None:
        names = [queues] if isinstance(queues, str) else list(queues or [])
        self.queues = [Queue(check_queue_name(q)) for q in names or [DEFAULT_QUEUE_NAME]]
        self.name = name or f"{socket.gethostname()}.{os.getpid()}.{os.urandom(2).hex()}"
        self.key = self.name
        self.pid = os.getpid()
        self.processed = 0
        self.failed = 0
        self._app: Offload | None = None
        self._executor: ExecutorRun | None = None
        self._stopping: str | None = None  # None, "warm" or "cold"
        self._lock = threading.Lock()
        self._held: Record | None = None
        self._lost: set[str] = set()
        self._dropped: set[str] = set()  # lost because deleted or replaced: let run, outcome dropped (RQ's way)
        self._fork_lock = threading.Lock()  # held by the heartbeat while it works, and while forking
        self._work_pid: int | None = None
        self._closed = threading.Event()
        self._grace_timer: threading.Timer | None = None

    def __repr__(self) -> str:
        return f"<Worker {self.name} queues={[q.queue_name for q in self.queues]}>"

    @property
    def app(self) -> Offload:
        if self._app is None:
            self._app = site_app()
        return self._app

    def queue_names(self) -> list[str]:
        """The prefixed names of the worker's queues (RQ's ``queue_names()``)."""
        return [q.name for q in self.queues]

    # -- lifecycle (logged as CKAN does) -------------------------------------------------------------------
    def register_birth(self) -> None:
        names = ", ".join(f'"{q.queue_name}"' for q in self.queues)
        log.info("Worker %s (PID %s) has started on queue(s) %s ", self.key, self.pid, names)
        self._store_call(self.app.store.register_worker, self._info())

    def register_death(self) -> None:
        self._store_call(self.app.store.unregister_worker, self.name)
        log.info("Worker %s (PID %s) has stopped", self.key, self.pid)

    def work(self, burst: bool = False, max_idle_time: float | None = None, with_scheduler: bool = True,
             max_jobs: int | None = None) -> bool:
        """Run jobs until stopped (SIGTERM/SIGINT: warm, again: cold), until the queues are empty (``burst``),
        after ``max_idle_time`` seconds without a job, or after ``max_jobs`` jobs. True if a job ran."""
        self.pid = self._work_pid = os.getpid()
        self._closed.clear()
        self._stopping = None
        offload_log = logging.getLogger("offload")
        silence = _Silence()
        offload_log.addFilter(silence)
        restore = self._install_signals()
        self.register_birth()
        beat = threading.Thread(target=self._heartbeat, name="offload-ckan-heartbeat", daemon=True)
        beat.start()
        try:
            return self._loop(burst, max_idle_time, with_scheduler, max_jobs)
        finally:
            self._closed.set()
            beat.join(5)
            if self._executor is not None:
                self._executor.stop()
                self._executor = None
            self.register_death()
            restore()
            offload_log.removeFilter(silence)

    def _loop(self, burst: bool, max_idle_time: float | None, with_scheduler: bool, max_jobs: int | None) -> bool:
        queues = [q.queue_name for q in self.queues]
        scheduler = Scheduler(self.app, all_schedules(self.app)) if with_scheduler else None
        next_tick = 0.0
        idle_since = time.monotonic()
        jobs_run = 0
        while self._stopping is None:
            if scheduler is not None and time.time() >= next_tick:
                next_tick = self._store_call(scheduler.tick) or time.time() + 5.0
            record = self._claim(queues)
            if record is None:
                if burst or (max_idle_time is not None and time.monotonic() - idle_since >= max_idle_time):
                    break
                wait = 1.0 if scheduler is None else max(0.05, min(1.0, next_tick - time.time()))
                if self._store_call(self.app.store.wait_for_work, queues, wait) is None:
                    time.sleep(wait)
                continue
            self._run(record)
            jobs_run += 1
            idle_since = time.monotonic()
            if max_jobs and jobs_run >= max_jobs:
                break
        return jobs_run > 0

    # -- one job: claim -> execute -> settle ---------------------------------------------------------------
    def _claim(self, queues: list[str]) -> Record | None:
        lease = float(self.app.config["offload.worker.lease"])
        found = self._store_call(self.app.store.claim, queues, self.name, lease, 1, time.time())
        if not found:
            return None
        record: Record = found[0]
        with self._lock:
            self._held = record
        return record

    def _run(self, record: Record) -> None:
        job = Job(record, self.app)
        try:
            self.execute_job(job, Queue(record.queue, self.app))
        except Exception as exc:  # an override (or a plugin's before_fork) failed: that is the job's failure
            if job.report is None:
                job.report = failure_report(exc)
                self.handle_exception(job, type(exc), exc, exc.__traceback__)
        finally:
            with self._lock:
                self._held = None
                lost = record.id in self._lost
                self._lost.discard(record.id)
        self._dropped.discard(record.id)
        if lost:
            return  # canceled, deleted or replaced meanwhile: the store keeps what the canceller recorded
        report = job.report or {"ok": True, "result": codec.encode_result(None)}
        outcome = outcome_for(record, report, time.time())
        if outcome.kind == "finish":
            self.processed += 1
        elif outcome.kind == "fail":
            self.failed += 1
        self._settle(outcome)

    def _settle(self, outcome: Outcome) -> None:
        for delay in (0.0, 0.5, 2.0, 5.0):
            time.sleep(delay)
            accepted = self._store_call(self.app.store.settle, [outcome], time.time())
            if accepted is not None:
                if not accepted[0] and outcome.kind != "release":
                    debug.warning("Result of job %s discarded: its lease was lost", outcome.job_id)
                return
        log.error("Could not record the outcome of job %s: the store is unavailable; it will run again once its "
                  "lease expires", outcome.job_id)

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run one job from the worker's process: release CKAN's database connections, tell ``IForkObserver``
        plugins, log the start, run the job in the job process, log the end."""
        self._release_database()
        label = f"{job.id} ({job.title})" if job.title else job.id
        log.info('Worker %s starts job %s from queue "%s"', self.key, label, queue.queue_name)
        for plugin in plugins.PluginImplementations(plugins.IForkObserver):
            plugin.before_fork()
        self._execute_in_job_process(job, queue)
        log.info('Worker %s has finished job %s from queue "%s"', self.key, label, queue.queue_name)

    def perform_job(self, job: Job, queue: Queue) -> bool:
        """Run the job function in this process; True if it returned. The job is ``rq.get_current_job()`` and
        ``offload.current_job()`` meanwhile. The outcome is kept on ``job`` (``report``, ``return_value_``,
        ``exc_info_tuple``); a failure goes through ``handle_exception``."""
        with running(job, self._progress_sink() if os.getpid() == self._work_pid else None):
            try:
                job.return_value_ = job.run()
                job.report = {"ok": True, "result": codec.encode_result(job.return_value_)}
                return True
            except BaseException as exc:  # a job's SystemExit is its failure, not the worker's
                job.exc_info_tuple = (type(exc), exc, exc.__traceback__)
                job.report = failure_report(exc)
                if os.getpid() == self._work_pid:
                    self.handle_exception(job, type(exc), exc, exc.__traceback__)
                return False
            finally:
                self._release_database()

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        """Log a job's exception at ERROR, with its traceback. Called in the worker's process: with the
        exception itself when the job ran here, or with a ``JobFailed`` (``.error``: type, message, traceback
        as text) when it ran in the job process."""
        exc = exc_info[1]
        if isinstance(exc, JobFailed):
            trace = str(exc.error.get("traceback") or "").rstrip()
            log.error("Job %s on worker %s raised an exception: %s%s", job.id, self.key, exc,
                      f"\n{trace}" if trace else "")
        else:
            log.error("Job %s on worker %s raised an exception: %s", job.id, self.key, exc, exc_info=exc_info)

    # -- the job process -----------------------------------------------------------------------------------
    def _execute_in_job_process(self, job: Job, queue: Queue) -> None:
        if self._executor is None or not self._executor.alive:
            self._executor = ExecutorRun(self, lambda: self._fork_lock)
        report = self._executor.run(job, self.app, self._interrupted)
        job.report = report
        if report.get("killed") in ("timeout", "crash", "canceled", "lost", "shutdown"):
            self._executor = None
        elif 0 < self._jobs_per_child() <= self._executor.jobs_run:
            self._executor.stop()
            self._executor = None
        if report.get("killed") in ("canceled", "lost"):
            log.warning("Job %s on worker %s was %s while running; its process was stopped", job.id, self.key,
                        "canceled" if report["killed"] == "canceled" else "taken over by another worker")
        elif report.get("killed") in ("timeout", "crash"):
            log.error("Job %s on worker %s failed: %s", job.id, self.key, report["message"])
        elif not report.get("ok"):
            failure = JobFailed(report.get("error") or {})
            self.handle_exception(job, JobFailed, failure, None)

    def _jobs_per_child(self) -> int:
        """How many jobs one forked job process runs (``ckan.offload.worker.max_jobs_per_child``; 0: no limit)."""
        return int(self.app.config["offload.worker.max_jobs_per_child"])

    def _interrupted(self, job_id: str) -> str | None:
        """Why the running job must stop now: ``canceled``, ``lost`` (its lease ran out and the job went back to
        its queue), ``shutdown`` or None. A job deleted or replaced meanwhile goes on (see the module's note)."""
        if job_id in self._lost and job_id not in self._dropped:
            with self._lock:
                held = self._held
            now = self._store_call(self.app.store.get, job_id)
            if held is None or held.id != job_id:
                return None
            if now is not None and now.created_at == held.created_at:
                return "canceled" if now.state == CANCELED else "lost"
            self._dropped.add(job_id)
        if self._stopping == "cold":
            return "shutdown"
        return None

    def _release_database(self) -> None:
        """Drop the SQLAlchemy session and the engine's pooled connections (they reconnect on next use)."""
        from ckan.model import meta

        try:
            meta.Session.remove()
            if meta.engine is not None:
                meta.engine.dispose()
        except Exception:
            debug.exception("Error while releasing the database session and engine")

    def _progress_sink(self) -> context.ProgressSink:
        app = self.app

        def sink(job_id: str, progress: dict[str, Any] | None, meta: dict[str, Any] | None) -> None:
            self._store_call(app.store.set_progress, job_id, progress, meta)

        return sink

    # -- leases, registry, signals, outages ----------------------------------------------------------------
    def _info(self) -> WorkerInfo:
        now = time.time()
        held = self._held
        return WorkerInfo(self.name, socket.gethostname(), self.pid, [q.queue_name for q in self.queues], 1, now,
                          now, jobs=[held.id] if held else [], processed=self.processed, failed=self.failed,
                          version=__version__)

    def _heartbeat(self) -> None:
        """Extend the running job's lease; keep the registry entry fresh; requeue jobs of dead workers."""
        lease = float(self.app.config["offload.worker.lease"])
        every = max(0.05, min(lease / 3, 1.0))
        last_registry = last_expired = time.monotonic()
        while not self._closed.wait(every):
            # Never in the middle of a store call when the worker forks its job process (see job_process).
            with self._fork_lock:
                with self._lock:
                    held = self._held
                if held is not None and held.id not in self._lost:
                    lost = self._store_call(self.app.store.extend_leases, self.name,
                                            {held.id: held.lease_token or ""}, lease, time.time())
                    if lost:
                        self._lost.update(lost)
                now = time.monotonic()
                # Also its heartbeat: offload workers reap a worker silent for offload.worker.dead_after (10 s).
                if now - last_registry >= 2.0:
                    last_registry = now
                    self._store_call(self.app.store.register_worker, self._info())
                if now - last_expired >= 5.0:
                    last_expired = now
                    self._store_call(self.app.store.requeue_expired, time.time())

    _outage_logged = False

    def _store_call(self, fn: Any, *args: Any) -> Any:
        """Call the store; during an outage log once and return None (the caller waits and tries again)."""
        try:
            result = fn(*args)
        except StoreUnavailable as exc:
            if not self._outage_logged:
                self._outage_logged = True
                log.error("Store unavailable: %s; the worker keeps trying", exc)
            return None
        if self._outage_logged:
            self._outage_logged = False
            log.warning("Store reachable again")
        return result

    def _install_signals(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        grace = float(self.app.config["offload.worker.grace"])

        def on_signal(signum: int, frame: object) -> None:
            if self._stopping is None:
                self._stopping = "warm"
                log.warning("Worker %s got %s: stopping after the running job (again to stop it now)", self.key,
                            signal.Signals(signum).name)
                self._grace_timer = threading.Timer(grace, self._go_cold)
                self._grace_timer.daemon = True
                self._grace_timer.start()
            else:
                self._go_cold()

        old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            if self._grace_timer is not None:
                self._grace_timer.cancel()
                self._grace_timer = None

        return restore

    def _go_cold(self) -> None:
        if self._stopping in (None, "warm"):
            self._stopping = "cold"
            log.warning("Worker %s: stopping the running job now; it goes back on its queue", self.key)
