"""The worker's supervisor: owns all store traffic and the executor children.

One thread runs the loop claim -> dispatch -> collect -> settle, plus timers (lease heartbeats, the worker
registry, expired-lease recovery, history purge). A second thread only waits for new work
(``Store.wait_for_work``) and pokes the loop through a pipe, so an idle worker reacts within the store's
wake-up latency without the loop polling.

Start times: a single-threaded child runs its jobs in the order given, so a job starts when the previous
one's result arrives; threaded children report starts themselves. Every timeout, crash, lease loss and
shutdown decision is taken here, never in the child.
"""

from __future__ import annotations

import logging
import math
import os
import random
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from offload import history
from offload.errors import StoreUnavailable
from offload.jobs import Job, Outcome, WorkerInfo, record_problem
from offload.schedule import Scheduler, all_schedules
from offload.version import __version__
from offload.worker.liveness import HEARTBEAT, Liveness, host_identity, process_start
from offload.worker.pool import Assigned, Child
from offload.worker.settle import (
    PER_JOB,
    outcome_for_corrupt,
    outcome_for_crash,
    outcome_for_lost_result,
    outcome_for_report,
    outcome_for_timeout,
)
from offload.worker.spawn import take_prestarted

if TYPE_CHECKING:
    from offload.app import Offload

log = logging.getLogger("offload")

PREFETCH_WINDOW = 0.05  # seconds of work a child may hold beyond what it runs, when jobs are short
PREFETCH_MAX = 64
HISTORY_FLUSH_SECONDS = 5.0  # how often a worker writes its metrics history (offload.history)
HISTORY_PRUNE_SECONDS = 600.0


@dataclass
class WorkerOptions:
    queues: list[str]
    concurrency: int = 1
    threads: int = 1
    burst: bool = False
    lease: float = 30.0
    grace: float = 60.0
    dead_after: float = 10.0  # a worker silent this long is dead (worker/liveness.py)
    host_id: str = ""  # this worker's host identity; empty: this machine's (worker/liveness.py)
    max_jobs_per_child: int = 0
    max_memory_per_child: int = 0  # MiB
    keep: float = 7 * 86400.0
    log_level: str = "INFO"
    imports: list[str] = field(default_factory=list)
    name: str | None = None
    with_scheduler: bool = True
    max_idle_time: float | None = None
    timeout_grace: float = 5.0  # JobTimeout raised at a job's limit, the kill this much later (0: kill at the limit)
    paths: list[str] = field(default_factory=lambda: ["."])  # put first on the import path (--path)


def apply_paths(paths: list[str]) -> None:
    """Put ``paths`` (made absolute) first on ``sys.path``, in the order given, so that job modules in them import
    (RQ's and Celery's workers put their directory there too); executors get the supervisor's ``sys.path``."""
    import os.path

    wanted = [os.path.abspath(p) for p in paths]
    sys.path[:] = list(dict.fromkeys([*wanted, *sys.path]))


def boot_executors(options: WorkerOptions) -> list[Child]:
    """Start the executor processes a worker with ``options`` runs. They boot, then wait for their
    configuration, which ``Supervisor.run`` sends once it has loaded the task registry."""
    prestarted = take_prestarted(options.concurrency)
    return [Child(index, options.threads, prestarted[index] if index < len(prestarted) else None)
            for index in range(options.concurrency)]


def start_executors(executors: list[Child], options: WorkerOptions, config: Any) -> None:
    """Send booting executors their configuration now, before the supervisor's own setup (store driver,
    connection), so that they load the job modules meanwhile; ``Supervisor.run`` configures the others."""
    from offload import registry

    init = executor_init(options, config, registry.contributed_modules())
    for child in executors:
        child.start(init)


def executor_init(options: WorkerOptions, config: Any, contributed: list[tuple[str, str]]) -> dict[str, Any]:
    """An executor's configuration message."""
    return {
        "sys_path": list(sys.path),
        "imports": list(options.imports),
        "contributed": contributed,
        "threads": options.threads,
        "log_level": options.log_level,
        "config": config,
    }


def abandon_executors(executors: list[Child]) -> None:
    """Kill executors booted for a worker that will not run (its setup failed)."""
    for child in executors:
        child.kill()
        child.reap()


class Supervisor:
    def __init__(self, app: Offload, options: WorkerOptions, executors: list[Child] | None = None) -> None:
        """``executors``: from ``boot_executors(options)``, called before the supervisor could be built (an
        interpreter's boot is the longest part of a worker's start; the rest of it can overlap with it)."""
        self.app = app
        self.store = app.store
        self.opts = options
        host = socket.gethostname()
        self.id = options.name or f"{host}.{os.getpid()}.{os.urandom(2).hex()}"
        self.info = WorkerInfo(self.id, host, os.getpid(), list(options.queues), options.concurrency,
                               time.time(), time.time(), version=__version__,
                               host_id=host_identity(options.host_id), pid_start=process_start(os.getpid()))
        self.liveness = Liveness(self.store, self.info, options.dead_after)
        self.children: list[Child] = executors or []
        self.contributed: list[tuple[str, str]] = []  # task modules from entry points, found once
        self.spare: Child | None = None  # a booted executor kept ready once one has crashed or been killed
        self.held: dict[str, tuple[Child, Assigned]] = {}
        # Jobs that were running in a threaded executor when it died, beside others: which one killed it is not
        # known, so each runs again alone (same attempt) in an executor kept for them (``Child.isolating``).
        self.suspects: dict[str, Job] = {}
        self.discarded = 0  # results refused by the store (fencing): not counted as finished or failed
        self.history = history.Recorder(self.store, self.id)
        self.outcomes: list[Outcome] = []
        self.avg_duration = 1.0  # seconds, EWMA; starts pessimistic so nothing is prefetched at first
        self.stopping: str | None = None  # None, "warm" or "cold"
        self.grace_deadline = math.inf
        self.queue_empty = False
        self.outage_since: float | None = None
        self.retry_store_at = 0.0
        self.timers: dict[str, float] = {}
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)
        # The loop holds this while it works (not while it sleeps in select); the waker thread takes it to claim
        # for an idle worker itself, and signal handlers to change what the loop sees.
        self.lock = threading.RLock()
        self.want_work = threading.Event()
        self.closed = threading.Event()
        self.scheduler: Scheduler | None = None
        self.next_tick = 0.0
        self.idle_since = time.monotonic()

    # -- run -----------------------------------------------------------------------------------------------
    def run(self) -> int:
        from offload import registry
        from offload.events.publish import delivery_queues

        if not self.children:
            self.children = boot_executors(self.opts)
        try:
            apply_paths(self.opts.paths)
            self.contributed = registry.contributed_modules()
            registry.load_registry(self.opts.imports, self.contributed)  # fail here, not in every executor
            if not self.opts.queues:
                self.opts.queues = ["default", *delivery_queues(self.app)]
                self.info.queues = list(self.opts.queues)
        except BaseException:
            abandon_executors(self.children)
            raise
        for child in self.children:
            if not child.configured:
                child.start(self._init())
        if self.opts.with_scheduler:
            self.scheduler = Scheduler(self.app, all_schedules(self.app))
        self._install_signals()
        queues = ", ".join(f'"{q}"' for q in self.opts.queues)
        log.info("Worker %s (PID %d) started on queue(s) %s with %d executor(s), store %s",
                 self.id, os.getpid(), queues, self.opts.concurrency, self.store.safe_url)
        self._store_call(self.store.register_worker, self.info)
        waker = threading.Thread(target=self._wait_for_work, name="offload-waker", daemon=True)
        waker.start()
        try:
            self._loop()
        finally:
            self.closed.set()
            with self.lock:
                self._shutdown()
        self._history_call(self.history.flush, time.time())
        discarded = f", {self.discarded} result(s) discarded (lease lost)" if self.discarded else ""
        log.info("Worker %s (PID %d) stopped: %d job(s) finished, %d failed%s",
                 self.id, os.getpid(), self.info.processed, self.info.failed, discarded)
        return 0

    def _loop(self) -> None:
        while True:
            with self.lock:
                if not self._step():
                    return
                readers, writers, timeout = self._sleep_plan()
            self._sleep(readers, writers, timeout)

    def _step(self) -> bool:
        """One turn of the loop; False when the worker should stop."""
        self._collect()
        self._enforce_deadlines()
        self._replace_children()
        self._flush()
        self._housekeeping()
        if self.stopping == "cold":
            return False
        if self.stopping == "warm" and not self.held:
            return False
        if not self.stopping:
            self._run_suspects()
            self._fill()
        if self.opts.burst and self.queue_empty and not self.held and not self.suspects and not self.outcomes:
            log.info("Worker %s: queues empty, burst mode done", self.id)
            return False
        if self.held or self.suspects:
            self.idle_since = time.monotonic()
        elif self.opts.max_idle_time is not None and time.monotonic() - self.idle_since > \
                self.opts.max_idle_time:
            log.info("Worker %s: idle for %.0f s, stopping", self.id, self.opts.max_idle_time)
            return False
        return True

    # -- claiming and dispatching --------------------------------------------------------------------------
    def _capacity(self, child: Child) -> int:
        if child.retiring or child.dead or child.isolating:
            return 0
        if not child.ready:
            return child.threads  # jobs wait in its socket while it boots; no prefetch until it is up
        extra = 0
        if self.avg_duration < PREFETCH_WINDOW:
            # What the child gets through in the window: with threads, that many jobs run side by side.
            extra = min(PREFETCH_MAX, int(child.threads * PREFETCH_WINDOW / max(self.avg_duration, 1e-5)))
        return child.threads + extra

    def _claimable(self) -> dict[Child, int]:
        """Free slots per child, or {} when a claim now is not worth a round trip (batch them up)."""
        if self.stopping or (self.outage_since is not None and time.monotonic() < self.retry_store_at):
            return {}
        free = {c: max(0, self._capacity(c) - len(c.assigned)) for c in self.children}
        total_free = sum(free.values())
        total_capacity = sum(self._capacity(c) for c in self.children)
        # Claim at once when an executor has an idle thread (or is idle); otherwise wait until half of the
        # prefetch room is free, so that short jobs are claimed in batches rather than one by one.
        idle = any(n > 0 and len(c.assigned) < c.threads for c, n in free.items())
        if total_free <= 0 or not (idle or total_free * 2 >= total_capacity):
            return {}
        return free

    def _fill(self) -> None:
        free = self._claimable()
        total_free = sum(free.values())
        if not total_free:
            return
        jobs = self._store_call(self.store.claim, self.opts.queues, self.id, self.opts.lease, total_free,
                                time.time())
        if jobs is not None:
            self._take(jobs, total_free)

    def _take(self, jobs: list[Job], asked: int) -> None:
        """Hand claimed jobs to the executors with room; give back any there is no room for after all."""
        self.queue_empty = len(jobs) < asked
        if self.queue_empty:
            self.want_work.set()
        jobs = self._refuse_corrupt(jobs)
        if self.stopping is None:
            free = {c: max(0, self._capacity(c) - len(c.assigned)) for c in self.children}
            for child in sorted(self.children, key=lambda c: len(c.assigned)):
                room = free.get(child, 0)
                batch, jobs = jobs[:room], jobs[room:]
                if batch:
                    self._dispatch(child, batch)
        for job in jobs:  # claimed by the waker while the loop claimed too, or while stopping: back they go
            self.outcomes.append(Outcome(job.id, job.lease_token or "", "release"))

    def _refuse_corrupt(self, jobs: list[Job]) -> list[Job]:
        """Fail, without running them, claimed jobs whose stored record is damaged or foreign."""
        runnable = []
        for job in jobs:
            problem = record_problem(job)
            if problem is None:
                runnable.append(job)
            else:
                outcome = outcome_for_corrupt(job, problem, time.time())
                self._count(outcome, job)
                self.outcomes.append(outcome)
        return runnable

    def _dispatch(self, child: Child, jobs: list[Job]) -> None:
        now = time.monotonic()
        for job in jobs:
            self.held[job.id] = (child, child.assign(job))
        if child.threads == 1:
            head = next(iter(child.assigned.values()))
            if head.started is None:
                self._mark_started(head, now)
        child.run(jobs, soft_timeouts=self.opts.timeout_grace > 0)

    def _run_suspects(self) -> None:
        """Run the suspects of a crash (see ``suspects``) one at a time, each alone in the executor kept for them,
        so that the one that kills its executor again is found and charged for it."""
        if not self.suspects:
            for child in self.children:
                if child.isolating and not child.assigned:
                    child.isolating = False
            return
        kept = next((c for c in self.children if c.isolating and not c.dead and not c.retiring), None)
        if kept is None:
            candidates = [c for c in self.children if not c.dead and not c.retiring]
            if not candidates:
                return
            kept = min(candidates, key=lambda c: len(c.assigned))
            kept.isolating = True  # takes no other job from now on; the jobs it has finish first
        child = kept
        if not child.assigned:
            job_id = next(iter(self.suspects))
            self._dispatch(child, [self.suspects.pop(job_id)])

    def _mark_started(self, assigned: Assigned, now: float, wall: float | None = None) -> None:
        assigned.started = now
        assigned.started_wall = wall or time.time()
        job = assigned.job
        assigned.deadline = self._deadline(job, now)
        log.info("Job %s started (attempt %d of %d)", job.describe(), job.attempts, job.max_attempts, extra=PER_JOB)

    def _deadline(self, job: Job, started: float) -> float | None:
        """When a job started at ``started`` is killed: its time limit, plus the grace after JobTimeout."""
        return None if job.timeout is None else started + job.timeout + self.opts.timeout_grace

    def _restart_clock(self, entry: Assigned, now: float) -> None:
        entry.started = now
        entry.deadline = self._deadline(entry.job, now)

    # -- collecting results --------------------------------------------------------------------------------
    def _collect(self) -> None:
        for child in self.children:
            if child.dead:
                continue
            try:
                while child.conn.poll():
                    self._handle(child, child.conn.recv())
            except (EOFError, OSError):
                self._child_died(child)

    def _handle(self, child: Child, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "done":
            for job_id, report in message[1]:
                self._job_done(child, job_id, report)
        elif kind == "start":
            entry = child.assigned.get(message[1])
            if entry is not None and entry.started is None:
                self._mark_started(entry, time.monotonic(), message[2])
        elif kind == "progress":
            self._store_call(self.store.set_progress, message[1], message[2], message[3])
        elif kind == "ready":
            child.ready = True
            child.rss = message[2]
            now = time.monotonic()
            for entry in child.running:  # dispatched while it booted: the clock starts now
                self._restart_clock(entry, now)

    def _job_done(self, child: Child, job_id: str, report: dict[str, Any]) -> None:
        entry = child.assigned.pop(job_id, None)
        if entry is None:
            return
        self.held.pop(job_id, None)
        now = time.monotonic()
        if report.get("skipped"):
            if self.stopping:
                self.outcomes.append(Outcome(job_id, entry.job.lease_token or "", "release"))
            return
        if entry.started is None:  # finished before we noticed it start (threads): count from now
            self._mark_started(entry, now)
        child.jobs_done += 1
        if "rss" in report:
            child.rss = report["rss"]
        duration = report.get("duration", 0.0)
        self.avg_duration = 0.8 * self.avg_duration + 0.2 * duration
        outcome = outcome_for_report(entry.job, report, time.time())
        self._count(outcome, entry.job, entry.started_wall)
        self.outcomes.append(outcome)
        if child.threads == 1 and not report.get("ok") and report["error"].get("reason") == "timeout":
            # JobTimeout was raised at an arbitrary point of the job: what it left (child processes, threads,
            # half-updated module state) goes with this executor. (A threaded one serves other jobs: it stays.)
            log.info("Executor %d (PID %d) is replaced after job %s stopped at its time limit", child.index,
                     child.pid, entry.job.id)
            child.retiring = child.tainted = True
        if child.threads == 1 and child.assigned:
            head = next(iter(child.assigned.values()))
            if head.started is None:
                self._mark_started(head, min(now, report.get("ended", now)))
        limit_jobs = self.opts.max_jobs_per_child
        limit_mem = self.opts.max_memory_per_child
        if (limit_jobs and child.jobs_done >= limit_jobs) or (limit_mem and child.rss > limit_mem):
            if not child.retiring:
                log.info("Executor %d (PID %d) recycled after %d job(s), %.0f MiB", child.index, child.pid,
                         child.jobs_done, child.rss)
                child.retiring = True

    def _count(self, outcome: Outcome, job: Job, started_wall: float | None = None) -> None:
        if outcome.kind == "finish":
            self.info.processed += 1
        elif outcome.kind == "fail":
            self.info.failed += 1
        if outcome.kind in ("finish", "fail", "retry"):
            ended = outcome.ended_at or time.time()
            runtime = ended - started_wall if started_wall is not None else None
            wait = started_wall - job.enqueued_at if started_wall is not None and job.enqueued_at else None
            self.history.record(job.queue, ended, outcome.kind == "finish", runtime, wait)

    # -- timeouts and crashes ------------------------------------------------------------------------------
    def _observe(self, child: Child) -> None:
        """Start times and deadlines of a single-threaded child from its slot. Its reports come in batches, so
        the oldest unreported job is not necessarily the one running: those before it have ended already."""
        if child.threads != 1 or not child.assigned:
            return
        seq, running, started = child.position()
        for entry in child.assigned.values():
            if entry.seq < seq or (entry.seq == seq and not running):
                entry.deadline = None  # ran to its end: its report is on its way, no deadline applies
            elif entry.seq == seq:
                if entry.started is None:
                    self._mark_started(entry, started)
                elif entry.started != started:
                    self._restart_clock(entry, started)
            else:
                break

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.dead:
                continue
            self._observe(child)
            late = [a for a in child.running if a.deadline is not None and now > a.deadline]
            if late:
                child.kill()
                cause = child.reap()
                for entry in late:
                    self._finish_killed(child, entry, outcome_for_timeout(entry.job, time.time(), cause,
                                                                          self.opts.timeout_grace))
                names = ", ".join(entry.job.id for entry in late)
                self._release_rest(child, f"its executor was killed for the timeout of job {names}")

    def _child_died(self, child: Child) -> None:
        cause = child.reap()
        running = child.running if child.threads > 1 else child.running_now()
        if child.retiring and not child.assigned:
            return
        log.error("Executor %d (PID %d) %s", child.index, child.pid, cause)
        if len(running) == 1:  # the job that killed it
            self._finish_killed(child, running[0], outcome_for_crash(running[0].job, time.time(), cause))
        else:
            self._suspect(child, running, cause)
        self._release_rest(child, f"its executor {cause}")

    def _suspect(self, child: Child, running: list[Assigned], cause: str) -> None:
        """Jobs that ran side by side in a threaded executor that died: none is charged for it; each runs again
        alone, in the same attempt (``_run_suspects``)."""
        for entry in running:
            child.assigned.pop(entry.job.id, None)
            self.held.pop(entry.job.id, None)
            self.suspects[entry.job.id] = entry.job
            log.warning("Job %s was running beside %d other job(s) in executor %d when it %s; which job caused it "
                        "is not known: it runs again alone, its attempt not counted", entry.job.describe(),
                        len(running) - 1, child.index, cause)

    def _finish_killed(self, child: Child, entry: Assigned, outcome: Outcome) -> None:
        child.assigned.pop(entry.job.id, None)
        self.held.pop(entry.job.id, None)
        self._count(outcome, entry.job, entry.started_wall)
        self.outcomes.append(outcome)

    def _release_rest(self, child: Child, why: str) -> None:
        """Jobs a killed child held but had not started go back to the head of their queues, as do jobs running
        beside the one it was killed for (threads: ``why`` says what happened), their attempt not counted. Those it
        had run to their end (its slot says so) but whose reports died with it in its outbox did run: their
        attempt counts."""
        seq, running, _ = child.position() if child.threads == 1 else (0, False, 0.0)
        for job_id, entry in list(child.assigned.items()):
            if entry.seq < seq or (entry.seq == seq and not running):
                outcome = outcome_for_lost_result(entry.job, time.time())
                self._count(outcome, entry.job, entry.started_wall)
                self.outcomes.append(outcome)
            else:
                if entry.started is not None:
                    log.warning("Job %s was stopped (%s); back on its queue, its attempt not counted",
                                entry.job.describe(), why)
                self.outcomes.append(Outcome(job_id, entry.job.lease_token or "", "release"))
            self.held.pop(job_id, None)
        child.assigned.clear()

    def _replace_children(self) -> None:
        for i, child in enumerate(self.children):
            if child.retiring and not child.dead and not child.assigned:
                if child.tainted:
                    child.kill()  # its process group and strays: what the timed-out job started
                else:
                    child.stop()
                child.reap()
            if child.dead and self.stopping is None:
                self.children[i] = self._replacement(child)
            elif child.dead:
                continue

    def _replacement(self, dead: Child) -> Child:
        """A new executor in place of ``dead``. After a crash or a kill (not a planned recycle) a spare that has
        booted already takes its place and another spare boots: a poison job retried within its attempts, or a
        run of timeouts, then costs the other jobs no boot time (an interpreter start, most of a second)."""
        if dead.retiring and not dead.tainted:
            return self._spawn(dead.index)
        spare, self.spare = self.spare, self._spawn(dead.index)
        if spare is None:
            return self._spawn(dead.index)
        spare.index = dead.index
        return spare

    def _init(self) -> dict[str, Any]:
        return executor_init(self.opts, self.app.config, self.contributed)

    def _spawn(self, index: int) -> Child:
        child = Child(index, self.opts.threads)
        child.start(self._init())
        return child

    # -- settling ------------------------------------------------------------------------------------------
    def _flush(self) -> None:
        if not self.outcomes:
            return
        batch = self.outcomes
        results = self._store_call(self.store.settle, batch, time.time())
        if results is None:
            return  # store unreachable: keep them and try again
        self.outcomes = []
        for outcome, accepted in zip(batch, results, strict=False):
            if not accepted and outcome.kind != "release":
                log.warning("Result of job %s discarded: its lease was lost (canceled, deleted, or expired "
                            "and taken by another worker)", outcome.job_id)
                self.discarded += 1
                if outcome.kind == "finish":
                    self.info.processed -= 1
                elif outcome.kind == "fail":
                    self.info.failed -= 1

    # -- timers --------------------------------------------------------------------------------------------
    def _due(self, name: str, every: float) -> bool:
        now = time.monotonic()
        if now >= self.timers.get(name, 0.0):
            self.timers[name] = now + every
            return True
        return False

    def _housekeeping(self) -> None:
        heartbeat = max(0.05, min(self.opts.lease / 3, 0.5))
        if (self.held or self.suspects) and self._due("leases", heartbeat):
            held = {job_id: entry.job.lease_token or "" for job_id, (_, entry) in self.held.items()}
            held.update((job_id, job.lease_token or "") for job_id, job in self.suspects.items())
            lost = self._store_call(self.store.extend_leases, self.id, held, self.opts.lease, time.time())
            for job_id in lost or []:
                self._lease_lost(job_id)
        if self._due("registry", 5.0):
            self.info.last_seen = time.time()
            self.info.jobs = [*self.held, *self.suspects]
            self._store_call(self.store.register_worker, self.info)
        if self._due("liveness", HEARTBEAT) and self.liveness.check(self._store_call) and self.queue_empty:
            self.want_work.set()
        if self._due("expired", max(0.25, min(self.opts.lease / 2, 5.0))):
            for job in self._store_call(self.store.requeue_expired, time.time()) or []:
                log.warning("Job %s lost its worker %s (lease expired); now %s", job.describe(),
                            (job.errors[-1].get("message") if job.errors else ""), job.state)
            if self.queue_empty:
                self.want_work.set()
        if self.scheduler is not None and time.time() >= self.next_tick and not self.stopping:
            next_tick = self._store_call(self.scheduler.tick)
            self.next_tick = next_tick if next_tick is not None else time.time() + 1.0
        if self.opts.keep and self._due("purge", 60.0):
            self._store_call(self.store.purge, time.time() - self.opts.keep)
        if self._due("history", HISTORY_FLUSH_SECONDS):
            self._history_call(self.history.flush, time.time())
        if self._due("history-prune", HISTORY_PRUNE_SECONDS):
            self._history_call(history.prune, self.store, self.opts.queues, time.time())

    def _history_call(self, fn: Any, *args: Any) -> None:
        """A metrics-history write: never a reason for the worker to stop (an outage is retried later)."""
        try:
            self._store_call(fn, *args)
        except Exception as exc:
            log.warning("Worker %s: could not write its metrics history: %s", self.id, exc)

    def _lease_lost(self, job_id: str) -> None:
        if self.suspects.pop(job_id, None) is not None:
            log.warning("Job %s was canceled or taken over by another worker; it will not run here", job_id)
            return
        found = self.held.get(job_id)
        if found is None:
            return
        child, entry = found
        if entry.started is None:
            child.send(("revoke", [job_id]))
            return
        log.warning("Job %s was canceled or taken over by another worker; stopping it", entry.job.describe())
        self.held.pop(job_id, None)
        child.assigned.pop(job_id, None)
        child.kill()
        child.reap()
        self._release_rest(child, f"its executor was stopped to cancel job {job_id}")

    # -- waiting -------------------------------------------------------------------------------------------
    def _wait_for_work(self) -> None:
        """The waker thread: waits for work while the queues are empty. When executors have room it also claims
        the work (in the same exchange with the store where the engine can) and hands it to them, rather than
        waking the loop to do that: one thread hand-off, and on Redis one round trip, less between a job's
        enqueue and its start. Claimed jobs there is no room for by then (the loop claimed too) go back."""
        while not self.closed.is_set():
            if not self.want_work.wait(0.5):
                continue
            with self.lock:
                free = self._claimable() if self.stopping is None else {}
            asked = sum(free.values())
            try:
                if asked:
                    jobs = self.store.wait_and_claim(self.opts.queues, self.id, self.opts.lease, asked, 1.0)
                    found = jobs is not None
                else:
                    jobs, found = None, self.store.wait_for_work(self.opts.queues, 1.0)
            except Exception:  # an outage: the loop reports it; wait and try again
                self.closed.wait(1.0)
                continue
            if not found:
                continue
            with self.lock:
                self.want_work.clear()
                self.queue_empty = False
                if jobs is not None:
                    self._take(jobs, asked)
                if self.closed.is_set():
                    if self.outcomes:  # the loop is gone: give them back ourselves
                        self._store_call(self.store.settle, self.outcomes, time.time())
                        self.outcomes = []
                    return
                try:
                    os.write(self.wake_w, b"w")  # the loop plans its next wait with what this changed
                except BlockingIOError:
                    pass

    def _sleep_plan(self) -> tuple[list[Any], list[Child], float]:
        """What to wait on and for how long, until something is due."""
        now = time.monotonic()
        timeout = 1.0
        deadlines = [a.deadline for _, a in self.held.values() if a.deadline is not None]
        if deadlines:
            timeout = min(timeout, max(0.0, min(deadlines) - now) + 0.001)
        if self.held:
            timeout = min(timeout, max(0.0, self.timers.get("leases", now) - now))
        if self.outcomes:
            timeout = 0.0 if self.outage_since is None else min(timeout, 0.5)
        if self.stopping == "warm":
            timeout = min(timeout, max(0.0, self.grace_deadline - now))
        if self.scheduler is not None:
            timeout = min(timeout, max(0.0, self.next_tick - time.time()))
        if not self.queue_empty and self._claimable():
            timeout = 0.0
        if self.opts.burst and self.queue_empty:
            timeout = min(timeout, 0.05)
        readers: list[Any] = [c.conn for c in self.children if not c.dead]
        if any(c.conn.pending() for c in self.children if not c.dead):
            timeout = 0.0  # a message already read off its socket is waiting to be handled
        readers.append(self.wake_r)
        writers = [c for c in self.children if not c.dead and c.conn.outgoing]
        return readers, writers, timeout

    def _sleep(self, readers: list[Any], writers: list[Child], timeout: float) -> None:
        """Wait (without the lock) for a child's message or room for what we post to it, the waker, a signal
        or the timeout."""
        try:
            ready, writable, _ = select.select(readers, writers, [], timeout)
        except (InterruptedError, ValueError, OSError):
            ready, writable = [], []  # ValueError/OSError: a socket closed meanwhile by the waker's turn
        if writable:
            with self.lock:
                for child in writable:
                    child.flush()
        if self.wake_r in ready:
            try:
                while os.read(self.wake_r, 512):
                    pass
            except BlockingIOError:
                pass
            with self.lock:
                self.queue_empty = False
        if self.stopping == "warm" and time.monotonic() >= self.grace_deadline:
            with self.lock:
                log.warning("Grace period of %.0f s is over: stopping running jobs and requeueing them",
                            self.opts.grace)
                self.stopping = "cold"

    # -- store calls through outages -----------------------------------------------------------------------
    def _store_call(self, fn: Any, *args: Any) -> Any:
        try:
            result = fn(*args)
        except StoreUnavailable as exc:
            now = time.monotonic()
            if self.outage_since is None:
                self.outage_since = now
                log.error("Store unavailable: %s; retrying with backoff (running jobs continue)", exc)
            backoff = min(10.0, 0.5 * 2 ** min(5, int((now - self.outage_since) / 2)))
            # Jittered (50-100 %), so that the workers of a site do not all reconnect to a new primary at once.
            self.retry_store_at = now + backoff * (0.5 + random.random() / 2)
            return None
        if self.outage_since is not None:
            log.warning("Store reachable again after %.1f s", time.monotonic() - self.outage_since)
            self.outage_since = None
        return result

    # -- signals and shutdown ------------------------------------------------------------------------------
    def _install_signals(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        with self.lock:
            self._stop_requested(signal.Signals(signum).name)

    def _stop_requested(self, name: str) -> None:
        self._release_suspects()
        if self.stopping is None:
            self.stopping = "warm"
            self.grace_deadline = time.monotonic() + self.opts.grace
            log.info("Worker %s got %s: warm shutdown, running jobs may finish within %.0f s (again to stop "
                     "now)", self.id, name, self.opts.grace)
            for child in self.children:
                waiting = [job_id for job_id, a in child.assigned.items() if a.started is None]
                if waiting:
                    child.send(("revoke", waiting))
        else:
            self.stopping = "cold"
            log.warning("Worker %s got %s again: cold shutdown, requeueing running jobs", self.id, name)

    def _release_suspects(self) -> None:
        """Suspects not run again yet go back to their queues (their attempt not counted)."""
        for job_id, job in self.suspects.items():
            self.outcomes.append(Outcome(job_id, job.lease_token or "", "release"))
        self.suspects.clear()

    def _shutdown(self) -> None:
        self._release_suspects()
        if self.spare is not None:
            self.spare.kill()
            self.spare.reap()
        for child in self.children:
            if child.dead:
                continue
            if child.assigned:
                child.kill()
                child.reap()
                for entry in list(child.assigned.values()):
                    self.outcomes.append(Outcome(entry.job.id, entry.job.lease_token or "", "release"))
                    if entry.started is not None:
                        log.warning("Job %s interrupted by shutdown; back on its queue", entry.job.describe())
                child.assigned.clear()
            elif child.ready:
                child.stop()
            else:
                child.kill()  # still booting, holds nothing: no reason to wait for it
        for child in self.children:
            if not child.dead:
                child.reap()
        self.held.clear()
        for _ in range(3):
            self._flush()
            if not self.outcomes:
                break
            time.sleep(0.5)
        if self.outcomes:
            log.error("Could not report %d outcome(s) to the store; their leases will expire and the jobs "
                      "run again", len(self.outcomes))
        self._store_call(self.store.unregister_worker, self.id)
        signal.set_wakeup_fd(-1)
        os.close(self.wake_r)
        os.close(self.wake_w)
