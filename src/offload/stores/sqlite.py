"""The embedded default engine: one SQLite file shared by any number of processes on one machine.

``sqlite:///offload.db`` (relative) or ``sqlite:////var/lib/offload/jobs.db`` (absolute). Options in the
query string: ``timeout`` (busy timeout, seconds, default 30) and ``poll`` (how often an idle worker looks for
new work, seconds, default 0.002).

WAL journal, ``synchronous=NORMAL`` (a committed job survives any process crash; a power cut may lose the
last transactions), ``BEGIN IMMEDIATE`` for every write so writers queue on the lock instead of failing
mid-transaction. Waiting for work polls ``PRAGMA data_version``, which changes only when another connection
commits, so an idle worker costs a few microseconds per poll.
"""

from __future__ import annotations

import builtins
import functools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from offload import codec
from offload.errors import StoreURLError
from offload.jobs import (
    CANCELED,
    FAILED,
    FINISHED,
    QUEUED,
    SCHEDULED,
    Job,
    JobQuery,
    Outcome,
    ScheduleRun,
    SearchResult,
    WorkerInfo,
)
from offload.stores import search_sql
from offload.stores.base import Store, mark_stored
from offload.stores.memory import abandoned_error, worker_lost_error
from offload.stores.sqlite_schema import MIGRATIONS

_COLUMNS = (
    "id, queue, func, task, payload, title, state, created_at, enqueued_at, run_at, started_at, ended_at, "
    "attempts, max_attempts, retry, timeout, result, error, errors, worker, lease_until, lease_token, "
    "progress, meta, unique_key, priority, limit_key"
)
_PENDING_SQL = "('scheduled','queued','started')"
_START = ("UPDATE jobs SET state='started', attempts=attempts+1, lease_token=lower(hex(randomblob(16))), "
          "lease_until=?, worker=?, started_at=?, ended_at=NULL WHERE seq IN ")
_CLAIM = (_START + "(SELECT seq FROM jobs WHERE queue=? AND state='queued' ORDER BY priority, enqueued_at, seq "
          f"LIMIT ?) RETURNING seq, {_COLUMNS}")
# The first queued job of a queue whose key (if it has one) has fewer than `?` started jobs.
_KEY_FREE = ("j.limit_key IS NULL OR (SELECT count(*) FROM jobs r WHERE r.queue = j.queue AND r.state = 'started' "
             "AND r.limit_key = j.limit_key) < ?")
_CLAIM_KEYED = (_START + f"(SELECT seq FROM jobs j WHERE queue=? AND state='queued' AND ({_KEY_FREE}) "
                f"ORDER BY priority, enqueued_at, seq LIMIT 1) RETURNING seq, {_COLUMNS}")
# A job's errors array, or an empty one where a corrupted or foreign row holds something else (CASE is lazy:
# json_type() would raise on malformed JSON).
_ERRORS = "(CASE WHEN NOT json_valid(errors) THEN '[]' WHEN json_type(errors) <> 'array' THEN '[]' ELSE errors END)"
_DONE_SQL = "('finished','failed','canceled')"


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


_SMALL: dict[str, Any] = {"[]": [], "{}": {}, '{"title":null}': {"title": None}}


def _load(text: str | None) -> Any:
    if text is None:
        return None
    small = _SMALL.get(text)
    if small is not None:
        return small.copy()  # the common values, without running the JSON decoder
    return json.loads(text)


# The bulk path binds each row's values into multi-row INSERTs: SQLite takes them as they are, where a JSON
# array of rows costs a json_extract per column (measured: 8-10 us/row against 14-18). Preparing a 256-row
# statement costs about as much as running it, so only a few sizes exist: full batches of 256, then the binary
# digits of the rest (9 statements at most, all kept in the connection's statement cache). 256 rows bind 4,608
# values, well under SQLite's limit (32,766 since 3.32). The counting trigger of schema 2 stays: it costs a bulk
# row 0.5-0.9 us, and counting outside it would turn the single enqueue's one autocommit INSERT into BEGIN,
# INSERT, UPSERT, COMMIT (measured no faster) and put count upkeep in every path that inserts.
_BATCH = 256
_INSERT_HEAD = (
    "INSERT INTO jobs (site, id, queue, func, task, payload, title, state, created_at, enqueued_at, run_at, "
    "attempts, max_attempts, retry, timeout, meta, unique_key, priority, limit_key, errors) VALUES "
)
_VALUES = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'[]')"
_WIDTH = _VALUES.count("?")  # values per row, as ``SQLiteStore._row`` builds them


def _batches(total: int) -> Iterator[tuple[int, int]]:
    """(first row, row count) of each INSERT for ``total`` rows."""
    start = 0
    while start < total:
        count = min(_BATCH, 1 << ((total - start).bit_length() - 1))
        yield start, count
        start += count


@functools.cache
def _insert_rows(count: int) -> str:
    return _INSERT_HEAD + ",".join([_VALUES] * count)


class SQLiteStore(Store):
    scheme = "sqlite"
    poll_interval = 0.001  # while busy: within a second of the last work found
    idle_poll_interval = 0.05  # what the interval backs off to (doubling) once idle for longer than that
    BUSY_WINDOW = 1.0

    def __init__(self, url: str, site_id: str = "default") -> None:
        super().__init__(url, site_id)
        parts = urlsplit(url)
        raw_path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if parts.netloc or not raw_path or raw_path == ":memory:":
            raise StoreURLError(
                f"invalid SQLite URL {url!r}: use sqlite:///relative/file.db or sqlite:////absolute/file.db "
                "(for an in-process store use memory://)"
            )
        self.path = Path(raw_path)
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            self.busy_timeout = float(options.pop("timeout", "30"))
            self.poll = float(options.pop("poll", str(self.poll_interval)))
            self.idle_poll = max(self.poll, float(options.pop("idle_poll", str(self.idle_poll_interval))))
        except ValueError:
            raise StoreURLError(f"invalid SQLite URL {url!r}: timeout, poll and idle_poll must be numbers") from None
        self._busy_until = 0.0  # monotonic; wait_for_work polls at ``poll`` until then
        if options:
            raise StoreURLError(f"unknown SQLite URL option(s) {', '.join(sorted(options))} in {url!r}")
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()

    # -- connections -------------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self.path.parent and not self.path.parent.exists():
            from offload.errors import StoreUnavailable

            raise StoreUnavailable(f"cannot open {self.path}: directory {self.path.parent} does not exist")
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                               check_same_thread=False)
        self._set_wal(conn)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA cache_size=-32768")  # 32 MiB: keeps the id and claim indexes in memory
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _set_wal(self, conn: sqlite3.Connection) -> None:
        """WAL mode (kept by the file once set). Switching a new file to it needs an exclusive lock, and SQLite
        answers "database is locked" at once, without its busy handler, while other connections open the same
        new file (workers started together on a fresh database): wait and try again, up to the busy timeout."""
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.002
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                    conn.close()
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        # A connection must never cross a fork: a child process opens its own.
        if conn is None or local.pid != os.getpid():
            conn = self._connect()
            local.conn = conn
            local.pid = os.getpid()
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def open(self) -> None:
        from offload.errors import StoreUnavailable

        if sqlite3.sqlite_version_info < (3, 35):
            raise StoreUnavailable(
                f"offload needs SQLite 3.35 or newer (RETURNING); this Python has {sqlite3.sqlite_version}"
            )
        try:
            self.migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable(f"cannot use SQLite database {self.path}: {exc}") from None

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

    def migrate(self) -> int:
        with self._write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS offload_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT max(version) FROM offload_schema").fetchone()
            version = row[0] or 0
            for number, script in enumerate(MIGRATIONS, start=1):
                if number > version:
                    statements = script.split(";\n") if isinstance(script, str) else script
                    for statement in statements:
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute("INSERT INTO offload_schema (version) VALUES (?)", (number,))
                    version = number
        return version

    # -- rows --------------------------------------------------------------------------------------------
    def _job(self, row: Sequence[Any]) -> Job:
        try:
            return self._decode(row)
        except (ValueError, TypeError):  # a corrupted or foreign row must not stop claim, list or requeue
            return self._damaged(row)

    def _damaged(self, row: Sequence[Any]) -> Job:
        """A row whose JSON columns do not all decode: the rest of it, and ``defect`` saying what is wrong."""
        fixed = list(row)
        problems = []
        for index, name in ((14, "retry"), (17, "error"), (18, "errors"), (22, "progress"), (23, "meta")):
            try:
                _load(row[index])
            except (ValueError, TypeError) as exc:
                fixed[index] = None
                problems.append(f"its {name} is not valid JSON ({exc})")
        try:
            job = self._decode(fixed)
        except (ValueError, TypeError):
            job = Job(id=str(row[0]), queue="", lease_token=row[21] if isinstance(row[21], str) else None)
        job.defect = "; ".join(problems) or "its record cannot be decoded"
        return job

    def _decode(self, row: Sequence[Any]) -> Job:
        return Job(
            id=row[0],
            queue=self.unqname(row[1]),
            func=row[2],
            task=row[3],
            payload=row[4],
            title=row[5],
            state=row[6],
            created_at=row[7],
            enqueued_at=row[8],
            run_at=row[9],
            started_at=row[10],
            ended_at=row[11],
            attempts=row[12],
            max_attempts=row[13],
            retry=_load(row[14]),
            timeout=row[15],
            result_json=row[16],
            error=_load(row[17]),
            errors=_load(row[18]) or [],
            worker=row[19],
            lease_until=row[20],
            lease_token=row[21],
            progress=_load(row[22]),
            meta=_load(row[23]) or {},
            unique_key=row[24],
            priority=row[25],
            limit_key=row[26],
        )

    def _row(self, job: Job, now: float) -> tuple[Any, ...]:
        return (
            self.site_id, job.id, self.qname(job.queue), job.func, job.task, job.payload, job.title, job.state,
            job.created_at, now if job.state == QUEUED else job.enqueued_at, job.run_at, job.attempts,
            job.max_attempts, _dump(job.retry), job.timeout, codec.dump_meta(job.meta), job.unique_key, job.priority,
            job.limit_key,
        )

    _INSERT = _INSERT_HEAD + _VALUES

    # -- producer ----------------------------------------------------------------------------------------
    def enqueue(self, job: Job, now: float) -> Job:
        # One INSERT is atomic on its own: in autocommit mode it is also its own transaction (one statement
        # instead of BEGIN, INSERT, COMMIT). Only a conflict needs the careful path.
        try:
            self._conn().execute(self._INSERT, self._row(job, now))
        except sqlite3.IntegrityError:
            return self._insert_each([job], now)[0]
        return mark_stored(job, now)

    def enqueue_many(self, jobs: Sequence[Job], now: float) -> list[Job]:
        if len(jobs) <= 1:
            return [self.enqueue(job, now) for job in jobs]
        if self._insert_all(jobs, now):
            return [mark_stored(job, now) for job in jobs]
        return self._insert_each(jobs, now)

    def _insert_all(self, jobs: Sequence[Job], now: float) -> bool:
        """Bulk path: up to ``_BATCH`` rows per INSERT, all in one transaction. Returns False, having written
        nothing, if any job conflicts; the careful path then handles them one by one."""
        values: list[Any] = []
        for job in jobs:
            values += self._row(job, now)
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for start, count in _batches(len(jobs)):
                conn.execute(_insert_rows(count), values[start * _WIDTH : (start + count) * _WIDTH])
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK")
            return False
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return True

    def _insert_each(self, jobs: Sequence[Job], now: float) -> list[Job]:
        """The careful path: one INSERT per job; a conflict returns the pending job that blocks it (as a
        duplicate) or replaces the done job with the same id."""
        out: list[Job] = []
        with self._write() as conn:
            for job in jobs:
                try:
                    conn.execute(self._INSERT, self._row(job, now))
                except sqlite3.IntegrityError:
                    existing = self._conflict(conn, job)
                    if existing is not None:
                        existing.duplicate = True
                        out.append(existing)
                        continue
                    conn.execute(self._INSERT, self._row(job, now))
                out.append(mark_stored(job, now))
        return out

    def _conflict(self, conn: sqlite3.Connection, job: Job) -> Job | None:
        """The pending job that blocks ``job`` (same id, else same unique key), or None after removing a done
        job with the same id. The done job stays when the unique key blocks: nothing replaces it."""
        row = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE site=? AND id=?", (self.site_id, job.id)).fetchone()
        if row is not None and row[6] not in (FINISHED, FAILED, CANCELED):
            return self._job(row)
        if job.unique_key is not None:
            holder = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE site=? AND unique_key=? AND state IN {_PENDING_SQL}",
                (self.site_id, job.unique_key),
            ).fetchone()
            if holder is not None:
                return self._job(holder)
        if row is not None:
            conn.execute("DELETE FROM jobs WHERE site=? AND id=?", (self.site_id, job.id))
        return None

    # -- worker ------------------------------------------------------------------------------------------
    def _promote(self, conn: sqlite3.Connection, now: float) -> None:
        conn.execute(
            "UPDATE jobs SET state='queued', enqueued_at=? WHERE site=? AND state='scheduled' AND run_at<=?",
            (now, self.site_id, now),
        )

    def claim(self, queues: Sequence[str], worker_id: str, lease: float, limit: int, now: float) -> list[Job]:
        claimed: list[Job] = []
        with self._write() as conn:
            self._promote(conn, now)
            paused, room, keyed = self._flow_of(conn, queues)
            for queue in queues:
                want = min(limit - len(claimed), room.get(queue, limit))
                if len(claimed) >= limit:
                    break
                if queue in paused or want <= 0:
                    continue
                start = (now + lease, worker_id, now)
                if queue in keyed:  # one at a time, each seeing the keys the ones before took
                    for _ in range(want):
                        rows = conn.execute(_CLAIM_KEYED, (*start, self.qname(queue), keyed[queue])).fetchall()
                        claimed.extend(self._job(r[1:]) for r in rows)
                        if not rows:
                            break
                    continue
                rows = conn.execute(_CLAIM, (*start, self.qname(queue), want)).fetchall()
                rows.sort(key=lambda r: (r[26], r[9], r[0]))  # RETURNING order is unspecified: sort again
                claimed.extend(self._job(r[1:]) for r in rows)
        return claimed

    def extend_leases(self, worker_id: str, held: dict[str, str], lease: float, now: float) -> list[str]:
        if not held:
            return []
        lost: list[str] = []
        with self._write() as conn:
            for job_id, token in held.items():
                cur = conn.execute(
                    "UPDATE jobs SET lease_until=? WHERE site=? AND id=? AND state='started' AND lease_token=?",
                    (now + lease, self.site_id, job_id, token),
                )
                if cur.rowcount == 0:
                    lost.append(job_id)
        return lost

    def settle(self, outcomes: Sequence[Outcome], now: float) -> list[bool]:
        results: list[bool] = []
        held = "site=? AND id=? AND state='started' AND lease_token=?"
        finished: set[str] = set()
        with self._write() as conn:
            batch = [[o.job_id, o.token, o.result_json, o.ended_at or now] for o in outcomes if o.kind == "finish"]
            if len(batch) > 1:
                # The common case, many jobs that returned: one statement, parsed by SQLite from one JSON array.
                # MATERIALIZED makes SQLite drive the join from the batch through the (site, id) index; left
                # to itself the planner scans the site's jobs for every row of the batch.
                rows = conn.execute(
                    "WITH j(id, token, result, ended) AS MATERIALIZED (SELECT json_extract(value, '$[0]'), "
                    "json_extract(value, '$[1]'), json_extract(value, '$[2]'), json_extract(value, '$[3]') "
                    "FROM json_each(?)) "
                    "UPDATE jobs SET state='finished', result=j.result, ended_at=j.ended, lease_token=NULL, "
                    "lease_until=NULL FROM j WHERE jobs.site=? AND jobs.id=j.id AND jobs.state='started' "
                    "AND jobs.lease_token=j.token RETURNING jobs.id",
                    (json.dumps(batch, separators=(",", ":")), self.site_id),
                ).fetchall()
                finished = {r[0] for r in rows}
            for o in outcomes:
                if len(batch) > 1 and o.kind == "finish":
                    results.append(o.job_id in finished)
                    continue
                key = (self.site_id, o.job_id, o.token)
                if o.kind == "finish":
                    cur = conn.execute(
                        f"UPDATE jobs SET state='finished', result=?, ended_at=?, lease_token=NULL, "
                        f"lease_until=NULL WHERE {held}",
                        (o.result_json, o.ended_at or now, *key),
                    )
                elif o.kind == "fail":
                    error = _dump(o.error or {})
                    cur = conn.execute(
                        f"UPDATE jobs SET state='failed', error=?, errors=json_insert({_ERRORS}, '$[#]', json(?)), "
                        f"ended_at=?, max_attempts=coalesce(?, max_attempts), lease_token=NULL, lease_until=NULL "
                        f"WHERE {held}",
                        (error, error, o.ended_at or now, o.max_attempts, *key),
                    )
                elif o.kind == "retry":
                    error = _dump(o.error or {})
                    cur = conn.execute(
                        f"UPDATE jobs SET state='scheduled', run_at=?, error=?, "
                        f"errors=json_insert({_ERRORS}, '$[#]', json(?)), ended_at=?, payload=coalesce(?, payload), "
                        f"max_attempts=coalesce(?, max_attempts), lease_token=NULL, lease_until=NULL WHERE {held}",
                        (o.retry_at if o.retry_at is not None else now, error, error, o.ended_at or now, o.payload,
                         o.max_attempts, *key),
                    )
                elif o.kind == "snooze":
                    cur = conn.execute(
                        f"UPDATE jobs SET state='scheduled', run_at=?, attempts=max(attempts-1, 0), started_at=NULL, "
                        f"worker=NULL, lease_token=NULL, lease_until=NULL WHERE {held}",
                        (o.retry_at if o.retry_at is not None else now, *key),
                    )
                else:  # release: keeps its old enqueued_at, so it goes back to the head of its queue
                    cur = conn.execute(
                        f"UPDATE jobs SET state='queued', attempts=max(attempts-1, 0), started_at=NULL, "
                        f"worker=NULL, lease_token=NULL, lease_until=NULL WHERE {held}",
                        key,
                    )
                results.append(cur.rowcount == 1)
        return results

    def requeue_expired(self, now: float) -> list[Job]:
        conn = self._conn()
        # Cheap read first: the common case is that nothing expired, and then no write lock is taken.
        if conn.execute(
            "SELECT 1 FROM jobs WHERE state='started' AND lease_until<? AND site=? LIMIT 1", (now, self.site_id)
        ).fetchone() is None:
            return []
        changed: list[Job] = []
        with self._write() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE state='started' AND lease_until<? AND site=?",
                (now, self.site_id),
            ).fetchall()
            for row in rows:
                changed.append(self._abandon(conn, self._job(row), abandoned_error, now))
        return changed

    def _abandon(self, conn: sqlite3.Connection, job: Job, error_for: Callable[[Job], dict[str, Any]], now: float
                 ) -> Job:
        """Requeue (or fail, attempts spent) a started job whose worker is gone, recording ``error_for(job)``."""
        error = error_for(job)
        job.errors.append(error)
        job.error = error
        job.lease_token = None
        job.lease_until = None
        if job.attempts < job.max_attempts:
            job.state = QUEUED  # keeps its enqueued_at: back to its place, not behind the backlog
        else:
            job.state, job.ended_at = FAILED, now
        conn.execute(
            "UPDATE jobs SET state=?, enqueued_at=?, ended_at=?, error=?, errors=?, lease_token=NULL, "
            "lease_until=NULL WHERE site=? AND id=?",
            (job.state, job.enqueued_at, job.ended_at, _dump(error), _dump(job.errors), self.site_id, job.id),
        )
        return job

    def _flow_of(self, conn: sqlite3.Connection, queues: Sequence[str]
                 ) -> tuple[set[str], dict[str, int], dict[str, int]]:
        """In one statement: which of ``queues`` are paused; for each queue of the site with a concurrency limit,
        how many more of its jobs it lets start; and for each with a per-key limit, that limit."""
        rows = conn.execute(
            "SELECT 0, queue, NULL, NULL FROM paused_queues WHERE site=?1 UNION ALL "
            "SELECT 1, l.queue, l.concurrency - coalesce((SELECT n FROM job_counts c WHERE c.site = l.site "
            "AND c.queue = l.queue AND c.state = 'started'), 0), l.key_concurrency FROM queue_limits l "
            "WHERE l.site=?1", (self.site_id,),
        ).fetchall()
        if not rows:
            return set(), {}, {}
        paused = {self.unqname(r[1]) for r in rows if r[0] == 0} & set(queues)
        return (paused, {self.unqname(r[1]): r[2] for r in rows if r[0] == 1 and r[2] is not None},
                {self.unqname(r[1]): r[3] for r in rows if r[0] == 1 and r[3] is not None})

    def _work_ready(self, conn: sqlite3.Connection, queues: Sequence[str], now: float) -> tuple[bool, float | None]:
        paused, room, keyed = self._flow_of(conn, queues)
        full = {q for q, n in room.items() if n <= 0}
        if paused or full:
            queues = [q for q in queues if q not in paused and q not in full]
        if keyed:
            blocked = {q for q in queues if q in keyed and conn.execute(
                f"SELECT 1 FROM jobs j WHERE queue=? AND state='queued' AND ({_KEY_FREE}) LIMIT 1",
                (self.qname(q), keyed[q])).fetchone() is None}
            queues = [q for q in queues if q not in blocked]
            if not queues:
                return False, None
        marks = ",".join("?" * len(queues))
        names = [self.qname(q) for q in queues]
        if conn.execute(f"SELECT 1 FROM jobs WHERE queue IN ({marks}) AND state='queued' LIMIT 1",
                        names).fetchone():
            return True, None
        row = conn.execute("SELECT min(run_at) FROM jobs WHERE site=? AND state='scheduled'",
                           (self.site_id,)).fetchone()
        next_due = row[0]
        return (next_due is not None and next_due <= now), next_due

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        conn = self._conn()
        deadline = time.monotonic() + timeout
        seen_version = None
        next_due: float | None = None
        interval = self.poll
        while True:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            now = time.time()
            if version != seen_version or (next_due is not None and now >= next_due):
                seen_version = version
                ready, next_due = self._work_ready(conn, queues, now)
                if ready:
                    self._busy_until = time.monotonic() + self.BUSY_WINDOW
                    return True
            mono = time.monotonic()
            remaining = deadline - mono
            if remaining <= 0:
                return False
            # Fast polling while work keeps coming, a slower poll once the worker has been idle a while: a
            # PRAGMA every millisecond costs an idle worker ~5 % of a core, every 50 ms nothing measurable.
            interval = self.poll if mono < self._busy_until else min(self.idle_poll, interval * 2)
            time.sleep(min(remaining, interval))

    def set_progress(self, job_id: str, progress: dict[str, Any] | None, meta: dict[str, Any] | None) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE jobs SET progress=coalesce(?, progress), meta=coalesce(?, meta) WHERE site=? AND id=?",
                (_dump(progress), _dump(meta), self.site_id, job_id),
            )
            return cur.rowcount == 1

    # -- management --------------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        row = self._conn().execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE site=? AND id=?", (self.site_id, job_id)
        ).fetchone()
        return None if row is None else self._job(row)

    def _where(self, queues: Sequence[str] | None, states: Sequence[str] | None) -> tuple[str, list[Any]]:
        clauses, params = ["site=?"], [self.site_id]
        if queues is not None:
            clauses.append(f"queue IN ({','.join('?' * len(queues))})")
            params.extend(self.qname(q) for q in queues)
        if states is not None:
            clauses.append(f"state IN ({','.join('?' * len(states))})")
            params.extend(states)
        return " AND ".join(clauses), params

    def list(
        self,
        queues: Sequence[str] | None = None,
        states: Sequence[str] | None = None,
        limit: int = 100,
        offset: int = 0,
        descending: bool = False,
    ) -> list[Job]:
        where, params = self._where(queues, states)
        order = "DESC" if descending else "ASC"
        rows = self._conn().execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE {where} ORDER BY created_at {order}, seq {order} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
        return [self._job(r) for r in rows]

    def search(self, query: JobQuery, limit: int = 25, offset: int = 0) -> SearchResult:
        queues = list(query.queues) if query.queues is not None else None
        states = list(query.states) if query.states is not None else None
        if query.plain:
            return super().search(query, limit, offset)
        where, params = self._where(queues, states)

        def mark(value: Any) -> str:
            params.append(value)
            return "?"

        clauses = " AND ".join([where, *search_sql.conditions(query, mark)])
        conn = self._conn()
        total = conn.execute(f"SELECT count(*) FROM jobs WHERE {clauses}", params).fetchone()[0]
        rows = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE {clauses} ORDER BY {search_sql.order_by(query)} "
                            "LIMIT ? OFFSET ?", [*params, limit, offset]).fetchall()
        return SearchResult([self._job(r) for r in rows], int(total))

    # Counting reads job_counts, kept up to date by triggers on jobs (schema version 2): no history scan.
    def count(self, queues: Sequence[str] | None = None, states: Sequence[str] | None = None) -> int:
        where, params = self._where(queues, states)
        row = self._conn().execute(f"SELECT coalesce(sum(n), 0) FROM job_counts WHERE {where}", params).fetchone()
        return int(row[0])

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        rows = self._conn().execute("SELECT queue, state, n FROM job_counts WHERE site=? AND n > 0", (self.site_id,))
        for queue, state, n in rows:
            out.setdefault(self.unqname(queue), {})[state] = n
        return out

    def waiting_since(self, now: float) -> dict[str, float]:
        rows = self._conn().execute(
            "SELECT queue, min(t) FROM ("
            " SELECT queue, min(coalesce(enqueued_at, created_at)) AS t FROM jobs"
            "  WHERE site=? AND state='queued' GROUP BY queue"
            " UNION ALL SELECT queue, min(run_at) FROM jobs"
            "  WHERE site=? AND state='scheduled' AND run_at <= ? GROUP BY queue"
            ") GROUP BY queue", (self.site_id, self.site_id, now))
        return {self.unqname(queue): float(t) for queue, t in rows}

    def cancel(self, job_id: str, now: float) -> Job | None:
        with self._write() as conn:
            conn.execute(
                f"UPDATE jobs SET state='canceled', ended_at=?, lease_token=NULL, lease_until=NULL "
                f"WHERE site=? AND id=? AND state IN {_PENDING_SQL}",
                (now, self.site_id, job_id),
            )
        return self.get(job_id)

    def retry_now(self, job_id: str, now: float) -> Job | None:
        with self._write() as conn:
            row = conn.execute("SELECT state, unique_key FROM jobs WHERE site=? AND id=?",
                               (self.site_id, job_id)).fetchone()
            if row is not None and row[0] in (FAILED, CANCELED, SCHEDULED):
                attempts = "attempts" if row[0] == SCHEDULED else "0"
                try:
                    conn.execute(
                        f"UPDATE jobs SET state='queued', attempts={attempts}, enqueued_at=?, run_at=NULL, "
                        f"ended_at=NULL WHERE site=? AND id=?",
                        (now, self.site_id, job_id),
                    )
                except sqlite3.IntegrityError:
                    pass  # another pending job holds its unique key: leave this one as it is
        return self.get(job_id)

    def to_front(self, job_id: str) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE jobs SET priority=0, enqueued_at=min(enqueued_at, coalesce((SELECT min(h.enqueued_at) "
                "- 0.000001 FROM jobs h WHERE h.site=jobs.site AND h.queue=jobs.queue AND h.state='queued' "
                "AND h.id<>jobs.id), enqueued_at)) WHERE site=? AND id=? AND state='queued'",
                (self.site_id, job_id),
            )
            return cur.rowcount == 1

    def delete(self, job_id: str) -> bool:
        with self._write() as conn:
            return conn.execute("DELETE FROM jobs WHERE site=? AND id=?", (self.site_id, job_id)).rowcount == 1

    def clear(self, queues: Sequence[str] | None = None) -> int:
        where, params = self._where(queues, (QUEUED, SCHEDULED))
        with self._write() as conn:
            return conn.execute(f"DELETE FROM jobs WHERE {where}", params).rowcount

    def purge(self, ended_before: float, limit: int = 10_000) -> int:
        with self._write() as conn:
            return conn.execute(
                f"DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs WHERE site=? AND state IN {_DONE_SQL} "
                f"AND ended_at<? LIMIT ?)",
                (self.site_id, ended_before, limit),
            ).rowcount

    # -- concurrency limits ------------------------------------------------------------------------------
    def _set_limit(self, column: str, queue: str, concurrency: int | None) -> None:
        with self._write() as conn:
            conn.execute(f"INSERT INTO queue_limits (site, queue, {column}) VALUES (?, ?, ?) "
                         f"ON CONFLICT (site, queue) DO UPDATE SET {column}=excluded.{column}",
                         (self.site_id, self.qname(queue), concurrency))
            conn.execute("DELETE FROM queue_limits WHERE site=? AND queue=? AND concurrency IS NULL "
                         "AND key_concurrency IS NULL", (self.site_id, self.qname(queue)))

    def _limits(self, column: str) -> dict[str, int]:
        rows = self._conn().execute(f"SELECT queue, {column} FROM queue_limits WHERE site=? AND {column} IS NOT NULL "
                                    "ORDER BY queue", (self.site_id,)).fetchall()
        return {self.unqname(r[0]): r[1] for r in rows}

    def set_limit(self, queue: str, concurrency: int | None) -> None:
        self._set_limit("concurrency", queue, concurrency)

    def limits(self) -> dict[str, int]:
        return self._limits("concurrency")

    def set_key_limit(self, queue: str, concurrency: int | None) -> None:
        self._set_limit("key_concurrency", queue, concurrency)

    def key_limits(self) -> dict[str, int]:
        return self._limits("key_concurrency")

    # -- paused queues -----------------------------------------------------------------------------------
    def pause(self, queue: str, now: float) -> bool:
        with self._write() as conn:
            cur = conn.execute("INSERT INTO paused_queues (site, queue, paused_at) VALUES (?, ?, ?) "
                               "ON CONFLICT (site, queue) DO NOTHING", (self.site_id, self.qname(queue), now))
            return cur.rowcount == 1

    def resume(self, queue: str) -> bool:
        with self._write() as conn:
            cur = conn.execute("DELETE FROM paused_queues WHERE site=? AND queue=?", (self.site_id, self.qname(queue)))
            return cur.rowcount == 1

    def paused(self) -> dict[str, float]:
        rows = self._conn().execute("SELECT queue, paused_at FROM paused_queues WHERE site=? ORDER BY queue",
                                    (self.site_id,)).fetchall()
        return {self.unqname(q): at for q, at in rows}

    # -- workers -----------------------------------------------------------------------------------------
    def register_worker(self, info: WorkerInfo) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO workers (site, id, last_seen, info) VALUES (?,?,?,?) "
                "ON CONFLICT (site, id) DO UPDATE SET last_seen=excluded.last_seen, info=excluded.info",
                (self.site_id, info.id, info.last_seen, _dump(info.to_dict())),
            )

    def unregister_worker(self, worker_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM workers WHERE site=? AND id=?", (self.site_id, worker_id))

    def list_workers(self, seen_after: float) -> builtins.list[WorkerInfo]:
        conn = self._conn()
        rows = conn.execute(
            "SELECT info FROM workers WHERE site=? AND last_seen>? ORDER BY id", (self.site_id, seen_after)
        ).fetchall()
        return [WorkerInfo(**json.loads(r[0])) for r in rows]

    def reap_dead_workers(
        self, worker_id: str, now: float, seen_before: float, dead: Sequence[str] = ()
    ) -> builtins.list[Job]:
        with self._write() as conn:
            conn.execute("UPDATE workers SET last_seen=? WHERE site=? AND id=?", (now, self.site_id, worker_id))
            gone = {w for w in dead if w != worker_id}
            gone.update(r[0] for r in conn.execute(
                "SELECT id FROM workers WHERE site=? AND last_seen<? AND id<>?", (self.site_id, seen_before, worker_id)
            ))
            if not gone:
                return []
            ids = sorted(gone)
            marks = ",".join("?" * len(ids))
            conn.execute(f"DELETE FROM workers WHERE site=? AND id IN ({marks})", (self.site_id, *ids))
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE state='started' AND site=? AND worker IN ({marks})",
                (self.site_id, *ids),
            ).fetchall()
            return [self._abandon(conn, self._job(row), worker_lost_error, now) for row in rows]

    # -- schedules ---------------------------------------------------------------------------------------
    def enqueue_periodic(self, name: str, slot: float, job: Job, now: float) -> bool:
        with self._write() as conn:
            row = conn.execute("SELECT last_slot FROM schedule_runs WHERE site=? AND name=?",
                               (self.site_id, name)).fetchone()
            if row is not None and row[0] >= slot:
                return False
            # Same transaction as the slot bookkeeping: the slot and its job commit together or not at all.
            try:
                conn.execute(self._INSERT, self._row(job, now))
                job_id = job.id
            except sqlite3.IntegrityError:
                existing = self._conflict(conn, job)
                if existing is None:
                    conn.execute(self._INSERT, self._row(job, now))
                job_id = job.id if existing is None else existing.id
            conn.execute(
                "INSERT INTO schedule_runs (site, name, last_slot, job_id) VALUES (?,?,?,?) "
                "ON CONFLICT (site, name) DO UPDATE SET last_slot=excluded.last_slot, job_id=excluded.job_id",
                (self.site_id, name, slot, job_id),
            )
        return True

    def schedule_runs(self) -> dict[str, ScheduleRun]:
        rows = self._conn().execute(
            "SELECT name, last_slot, job_id FROM schedule_runs WHERE site=?", (self.site_id,)
        ).fetchall()
        return {name: ScheduleRun(name, last_slot, job_id) for name, last_slot, job_id in rows}

    # -- records -----------------------------------------------------------------------------------------
    def put_record(self, kind: str, key: str, data: dict[str, Any]) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO records (site, kind, key, data) VALUES (?,?,?,?) "
                "ON CONFLICT (site, kind, key) DO UPDATE SET data=excluded.data",
                (self.site_id, kind, key, _dump(data)),
            )

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        row = self._conn().execute(
            "SELECT data FROM records WHERE site=? AND kind=? AND key=?", (self.site_id, kind, key)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def list_records(self, kind: str) -> builtins.list[tuple[str, dict[str, Any]]]:
        rows = self._conn().execute(
            "SELECT key, data FROM records WHERE site=? AND kind=? ORDER BY key", (self.site_id, kind)
        ).fetchall()
        return [(key, json.loads(data)) for key, data in rows]

    def delete_record(self, kind: str, key: str) -> bool:
        with self._write() as conn:
            cur = conn.execute("DELETE FROM records WHERE site=? AND kind=? AND key=?", (self.site_id, kind, key))
            return cur.rowcount == 1
