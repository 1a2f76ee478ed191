"""The fault battery's independent ledger: one SQLite row per execution, written by the job bodies themselves.

A job body inserts a row when it starts (job id, attempt, executor pid, supervisor pid, start time) and sets
``ended`` when its work is done, each in its own committed transaction (WAL, so a SIGKILLed process loses
nothing it committed). Every verdict of the battery is computed from these rows, never from offload's store:
a job is *done* when it has an ended row, *lost* when it was acknowledged at enqueue and has none.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    n       INTEGER PRIMARY KEY,
    job     TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    pid     INTEGER NOT NULL,
    ppid    INTEGER NOT NULL,
    tag     TEXT NOT NULL DEFAULT '',
    started REAL NOT NULL,
    ended   REAL
);
CREATE INDEX IF NOT EXISTS executions_job ON executions (job);
"""

_connections: dict[tuple[int, str], sqlite3.Connection] = {}


def connect(path: str | Path) -> sqlite3.Connection:
    """This process's connection to the ledger at ``path`` (autocommit, WAL, patient with the write lock)."""
    key = (os.getpid(), str(path))
    conn = _connections.get(key)
    if conn is None:
        conn = sqlite3.connect(str(path), timeout=60, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        _connections[key] = conn
    return conn


def create(path: str | Path) -> Path:
    path = Path(path)
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    conn.close()
    return path


def start(path: str | Path, job_id: str, attempt: int, tag: str = "") -> int:
    cur = connect(path).execute(
        "INSERT INTO executions (job, attempt, pid, ppid, tag, started) VALUES (?, ?, ?, ?, ?, ?)",
        (job_id, attempt, os.getpid(), os.getppid(), tag, time.time()),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def end(path: str | Path, row: int) -> None:
    connect(path).execute("UPDATE executions SET ended=? WHERE n=?", (time.time(), row))


@dataclass(frozen=True)
class Execution:
    n: int
    job: str
    attempt: int
    pid: int
    ppid: int
    tag: str
    started: float
    ended: float | None


def read(path: str | Path) -> list[Execution]:
    if not Path(path).exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
    try:
        rows = conn.execute("SELECT n, job, attempt, pid, ppid, tag, started, ended FROM executions ORDER BY n")
        return [Execution(*row) for row in rows.fetchall()]
    finally:
        conn.close()


def count_done(path: str | Path) -> int:
    """Distinct jobs with an ended execution (cheap enough to poll while a run drains)."""
    if not Path(path).exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
    try:
        row = conn.execute("SELECT count(DISTINCT job) FROM executions WHERE ended IS NOT NULL").fetchone()
        return int(row[0])
    finally:
        conn.close()


def by_job(executions: list[Execution]) -> dict[str, list[Execution]]:
    out: dict[str, list[Execution]] = defaultdict(list)
    for e in executions:
        out[e.job].append(e)
    return out


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Kill:
    """A supervisor SIGKILLed at ``at`` (wall clock); ``since`` is when it was started."""

    pid: int
    at: float
    since: float


def delivery_summary(executions: list[Execution], acknowledged: set[str], kills: list[Kill]) -> dict[str, object]:
    """Lost, duplicates and what the kills explain, from the ledger alone.

    An execution was *in flight on a killed worker* when its supervisor was SIGKILLed before the store recorded
    its outcome: it has no ended row (cut short), or it ended but the job ran again later (its result never
    reached the store). A duplicate (a job with two ended executions) is *explained* when every ended execution
    but the last was in flight on a killed worker; an unexplained duplicate is a delivery bug.
    """
    jobs = by_job(executions)
    killed = {k.pid: k for k in kills}

    def on_killed(e: Execution) -> Kill | None:
        # An executor outlives its supervisor by a few milliseconds (PR_SET_PDEATHSIG is delivered once the
        # supervisor is gone), long enough to start a short job after the kill was sent.
        k = killed.get(e.ppid)
        return k if k is not None and k.since - 1.0 <= e.started <= k.at + 2.0 else None

    done = {job for job, runs in jobs.items() if any(r.ended is not None for r in runs)}
    lost = sorted(acknowledged - done)
    duplicates: list[str] = []
    unexplained: list[str] = []
    interrupted: set[str] = set()
    unsettled: set[str] = set()
    recovery: list[float] = []
    unsettled_age: list[float] = []
    for job, runs in jobs.items():
        for i, run in enumerate(runs):
            kill = on_killed(run)
            later = runs[i + 1:]
            if kill is None:
                continue
            if run.ended is None:
                interrupted.add(job)
            elif later:
                unsettled.add(job)
                unsettled_age.append(kill.at - run.ended)
            else:
                continue
            after = [r.started for r in later if r.started >= kill.at and r.ppid != run.ppid]
            if after:
                recovery.append(min(after) - kill.at)
        ended = [r for r in runs if r.ended is not None]
        if len(ended) > 1:
            duplicates.append(job)
            if any(on_killed(r) is None for r in ended[:-1]):
                unexplained.append(job)
    in_flight = interrupted | unsettled
    return {
        "jobs": len(acknowledged),
        "executions": len(executions),
        "done": len(done & acknowledged),
        "lost": len(lost),
        "lost_ids": lost[:20],
        "duplicates": len(duplicates),
        "duplicate_ids": sorted(duplicates)[:20],
        "unexplained_duplicates": len(unexplained),
        "unexplained_ids": sorted(unexplained)[:20],
        "in_flight_on_killed": len(in_flight),
        "interrupted": len(interrupted),
        "ended_unsettled": len(unsettled),
        "unsettled_age_max": max(unsettled_age) if unsettled_age else None,
        "recovery": recovery,
        "recovery_p50": percentile(recovery, 0.5),
        "recovery_p99": percentile(recovery, 0.99),
        "recovery_max": max(recovery) if recovery else None,
    }
