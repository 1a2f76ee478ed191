"""The PostgreSQL engine: ``postgresql://user:password@host:5432/dbname?schema=offload``.

The URL is a libpq URL. ``schema`` (default ``offload``) is offload's own option and is removed before
connecting; every other query parameter (``sslmode``, ``connect_timeout``, ``application_name`` ...) goes to
libpq untouched. All tables live in that schema, which ``migrate()`` creates when it is missing; several sites
share it, told apart by the ``site`` column of every table and by queue names stored as ``<site>:<queue>``.

How it is built, and why:

- **One round trip per verb.** Each verb is one SQL statement in autocommit mode (batches travel as arrays
  through ``unnest``); psycopg prepares a statement on the server once it has been used a few times.
  ``enqueue_many`` needs a second round only when a batch holds two jobs with the same id or unique key.
- **Claim** locks queue heads with ``FOR UPDATE SKIP LOCKED`` per queue, earlier queues first, FIFO by
  ``(enqueued_at, seq)``. Due scheduled jobs of the listed queues are claimed in the same statement straight
  from ``scheduled`` (a statement cannot see rows its own CTE promoted), and the other due jobs of the site
  are promoted to ``queued``, at most ``promote_batch`` per call.
- **Times** are the caller's floats (``double precision``); the server clock is never read.
- **Indexes** are partial wherever a verb looks at one state (waiting, due, started, done), so the cost of
  a claim does not grow with the history of finished jobs. ``lease_until`` is not indexed, so extending a
  lease changes no indexed column and is a HOT update.
- **Bloat.** A queue rewrites each row several times. The jobs table keeps ``fillfactor = 70`` (free room on
  each page: new row versions stay on their page, HOT updates possible, pages pruned without vacuum) and a
  2% autovacuum threshold. ``purge`` deletes in batches of ``purge_batch`` rows, oldest first, one short
  transaction each, so retention never holds long locks or writes one huge burst of WAL.
- **Waking workers.** Verbs that make work claimable (enqueue, promote, release, retry, requeue) call
  ``pg_notify`` on a channel private to the schema and site, with the stored queue name as payload (an empty
  payload: the schedule changed). ``wait_for_work`` LISTENs on a connection of its own, checks for work, then
  sleeps on the socket until a notification or the next scheduled job's due time.
- **Failures.** A lost connection becomes ``StoreUnavailable`` naming the URL without its password; the broken
  connection is dropped and the next call connects again. Connections are never carried across ``fork()``.
- **Migrations** are the files ``sql/postgres_NNNN_*.sql``, applied in order in one transaction under
  ``pg_advisory_xact_lock``, recorded in ``<schema>.schema_version``.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import json
import os
import re
import select
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from offload.errors import StoreError, StoreUnavailable, StoreURLError
from offload.jobs import QUEUED, Job, Outcome, ScheduleRun, WorkerInfo
from offload.stores.base import Store

Connection = psycopg.Connection[TupleRow]

_SCHEMA_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_MIGRATION_RE = re.compile(r"postgres_(\d{4})_\w+\.sql")

_COLUMNS = (
    "id", "queue", "func", "task", "payload", "title", "state", "created_at", "enqueued_at", "run_at",
    "started_at", "ended_at", "attempts", "max_attempts", "retry", "timeout", "result", "error", "errors",
    "worker", "lease_until", "lease_token", "progress", "meta", "unique_key",
)
_PENDING = "('scheduled', 'queued', 'started')"
_DONE = "('finished', 'failed', 'canceled')"


def _cols(alias: str) -> str:
    return ", ".join(f"{alias}.{c}" for c in _COLUMNS)


def _append_json(array: str, item: str) -> str:
    """SQL appending the JSON value ``item`` to the JSON array column ``array``, keeping its text as it is."""
    return (
        f"(CASE WHEN json_array_length({array}) = 0 THEN '[' || {item} || ']' "
        f"ELSE left(rtrim({array}::text), -1) || ',' || {item} || ']' END)::json"
    )


def _notify(queue: str, state: str) -> str:
    """SQL (for RETURNING) waking the site's idle workers: the queue gained work, or the schedule changed."""
    return f"pg_notify(%(channel)s, CASE WHEN {state} = 'queued' THEN {queue} ELSE '' END)"


_ENQUEUE = f"""
WITH input AS (
    SELECT * FROM unnest(
        %(id)s::text[], %(queue)s::text[], %(func)s::text[], %(task)s::text[], %(payload)s::text[],
        %(title)s::text[], %(state)s::text[], %(created_at)s::float8[], %(enqueued_at)s::float8[],
        %(run_at)s::float8[], %(attempts)s::int4[], %(max_attempts)s::int4[], %(retry)s::text[],
        %(timeout)s::float8[], %(meta)s::text[], %(unique_key)s::text[], %(insert)s::bool[]
    ) WITH ORDINALITY AS i(id, queue, func, task, payload, title, state, created_at, enqueued_at, run_at,
                           attempts, max_attempts, retry, timeout, meta, unique_key, insert, ord)
),
taken AS (
    SELECT i.ord, t.*
    FROM input i CROSS JOIN LATERAL (
        SELECT * FROM (
            SELECT 1 AS by_key, {_cols("j")} FROM {{s}}.jobs j
            WHERE j.site = %(site)s AND j.id = i.id AND j.state IN {_PENDING}
            UNION ALL
            SELECT 2, {_cols("j")} FROM {{s}}.jobs j
            WHERE j.site = %(site)s AND j.unique_key = i.unique_key AND j.state IN {_PENDING}
        ) c ORDER BY c.by_key LIMIT 1
    ) t
),
ins AS (
    INSERT INTO {{s}}.jobs AS j (site, id, queue, func, task, payload, title, state, created_at, enqueued_at,
                                 run_at, attempts, max_attempts, retry, timeout, meta, unique_key)
    SELECT %(site)s, i.id, i.queue, i.func, i.task, i.payload, i.title, i.state, i.created_at, i.enqueued_at,
           i.run_at, i.attempts, i.max_attempts, i.retry::json, i.timeout, i.meta::json, i.unique_key
    FROM input i
    WHERE i.insert AND NOT EXISTS (SELECT 1 FROM taken t WHERE t.ord = i.ord)
    ORDER BY i.ord
    ON CONFLICT (site, id) DO UPDATE SET
        seq = excluded.seq, queue = excluded.queue, func = excluded.func, task = excluded.task,
        payload = excluded.payload, title = excluded.title, state = excluded.state,
        created_at = excluded.created_at, enqueued_at = excluded.enqueued_at, run_at = excluded.run_at,
        started_at = NULL, ended_at = NULL, attempts = excluded.attempts, max_attempts = excluded.max_attempts,
        retry = excluded.retry, timeout = excluded.timeout, result = NULL, error = NULL, errors = '[]',
        worker = NULL, lease_until = NULL, lease_token = NULL, progress = NULL, meta = excluded.meta,
        unique_key = excluded.unique_key
    WHERE j.state IN {_DONE}
    RETURNING j.id, {_notify("j.queue", "j.state")}
)
SELECT t.ord, t.by_key, {_cols("t")} FROM taken t
UNION ALL
SELECT NULL, NULL, ins.id, {", ".join(["NULL"] * (len(_COLUMNS) - 1))} FROM ins
"""

_CLAIM = f"""
WITH wanted AS (
    SELECT q.name, q.pos FROM unnest(%(queues)s::text[]) WITH ORDINALITY AS q(name, pos)
),
candidates AS (
    SELECT w.pos, 0 AS part, c.enqueued_at AS k, c.seq, c.id
    FROM wanted w CROSS JOIN LATERAL (
        SELECT j.id, j.seq, j.enqueued_at FROM {{s}}.jobs j
        WHERE j.queue = w.name AND j.state = 'queued'
        ORDER BY j.enqueued_at, j.seq LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) c
    UNION ALL
    SELECT w.pos, 1, 0, c.seq, c.id
    FROM wanted w CROSS JOIN LATERAL (
        SELECT j.id, j.seq FROM {{s}}.jobs j
        WHERE j.site = %(site)s AND j.state = 'scheduled' AND j.run_at <= %(now)s AND j.queue = w.name
        ORDER BY j.run_at, j.seq LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) c
),
chosen AS (
    SELECT c.id, row_number() OVER (ORDER BY c.pos, c.part, c.k, c.seq) AS ord
    FROM candidates c ORDER BY c.pos, c.part, c.k, c.seq LIMIT %(limit)s
),
promoted AS (
    UPDATE {{s}}.jobs j SET state = 'queued', enqueued_at = %(now)s
    FROM (
        SELECT d.id FROM {{s}}.jobs d
        WHERE d.site = %(site)s AND d.state = 'scheduled' AND d.run_at <= %(now)s
        ORDER BY d.run_at LIMIT %(promote)s
        FOR UPDATE SKIP LOCKED
    ) due
    WHERE j.site = %(site)s AND j.id = due.id AND due.id NOT IN (SELECT id FROM chosen)
    RETURNING {_notify("j.queue", "j.state")}
),
claimed AS (
    UPDATE {{s}}.jobs j SET
        state = 'started', attempts = j.attempts + 1, lease_token = md5(random()::text || clock_timestamp()::text),
        lease_until = %(lease_until)s, worker = %(worker)s, started_at = %(now)s, ended_at = NULL,
        enqueued_at = CASE WHEN j.state = 'scheduled' THEN %(now)s ELSE j.enqueued_at END
    FROM chosen c
    WHERE j.site = %(site)s AND j.id = c.id
    RETURNING c.ord, {_cols("j")}
)
SELECT * FROM claimed ORDER BY ord
"""

_EXTEND = """
UPDATE {s}.jobs j SET lease_until = %(until)s
FROM unnest(%(id)s::text[], %(token)s::text[]) AS h(id, token)
WHERE j.site = %(site)s AND j.id = h.id AND j.state = 'started' AND j.lease_token = h.token
RETURNING j.id
"""

_SETTLE = f"""
UPDATE {{s}}.jobs j SET
    state = CASE o.kind WHEN 'finish' THEN 'finished' WHEN 'fail' THEN 'failed'
                        WHEN 'retry' THEN 'scheduled' ELSE 'queued' END,
    result = CASE WHEN o.kind = 'finish' THEN o.result ELSE j.result END,
    error = CASE WHEN o.kind IN ('fail', 'retry') THEN o.error::json ELSE j.error END,
    errors = CASE WHEN o.kind IN ('fail', 'retry') THEN {_append_json("j.errors", "o.error")} ELSE j.errors END,
    run_at = CASE WHEN o.kind = 'retry' THEN o.retry_at ELSE j.run_at END,
    ended_at = CASE WHEN o.kind = 'release' THEN j.ended_at ELSE o.ended_at END,
    attempts = CASE WHEN o.kind = 'release' THEN greatest(j.attempts - 1, 0) ELSE j.attempts END,
    started_at = CASE WHEN o.kind = 'release' THEN NULL ELSE j.started_at END,
    worker = CASE WHEN o.kind = 'release' THEN NULL ELSE j.worker END,
    lease_token = NULL, lease_until = NULL
FROM unnest(%(id)s::text[], %(token)s::text[], %(kind)s::text[], %(result)s::text[], %(error)s::text[],
            %(retry_at)s::float8[], %(ended_at)s::float8[])
     WITH ORDINALITY AS o(id, token, kind, result, error, retry_at, ended_at, ord)
WHERE j.site = %(site)s AND j.id = o.id AND j.state = 'started' AND j.lease_token = o.token
RETURNING o.ord, CASE WHEN o.kind IN ('retry', 'release') THEN {_notify("j.queue", "j.state")} END
"""

_ABANDONED = (
    "json_build_object('type', 'LeaseExpired', 'reason', 'abandoned', 'message', 'worker ' || "
    "coalesce(e.worker, 'None') || ' stopped renewing the lease (killed or lost); attempt ' || e.attempts, "
    "'traceback', NULL)::text"
)

_REQUEUE_EXPIRED = f"""
UPDATE {{s}}.jobs j SET
    state = CASE WHEN j.attempts < j.max_attempts THEN 'queued' ELSE 'failed' END,
    enqueued_at = CASE WHEN j.attempts < j.max_attempts THEN %(now)s ELSE j.enqueued_at END,
    ended_at = CASE WHEN j.attempts < j.max_attempts THEN j.ended_at ELSE %(now)s END,
    error = e.error::json, errors = {_append_json("j.errors", "e.error")},
    lease_token = NULL, lease_until = NULL
FROM (
    SELECT e.id, {_ABANDONED} AS error FROM {{s}}.jobs e
    WHERE e.site = %(site)s AND e.state = 'started' AND e.lease_until < %(now)s
    FOR UPDATE SKIP LOCKED
) e
WHERE j.site = %(site)s AND j.id = e.id
RETURNING {_cols("j")}, {_notify("j.queue", "j.state")}
"""

_WORK_READY = """
SELECT EXISTS (
    SELECT 1 FROM unnest(%(queues)s::text[]) AS q(name)
    WHERE EXISTS (SELECT 1 FROM {s}.jobs j WHERE j.queue = q.name AND j.state = 'queued')
), (SELECT min(run_at) FROM {s}.jobs WHERE site = %(site)s AND state = 'scheduled')
"""

_GET = f"SELECT {_cols('j')} FROM {{s}}.jobs j WHERE j.site = %(site)s AND j.id = %(id)s"

_CANCEL = f"""
WITH changed AS (
    UPDATE {{s}}.jobs j SET state = 'canceled', ended_at = %(now)s, lease_token = NULL, lease_until = NULL
    WHERE j.site = %(site)s AND j.id = %(id)s AND j.state IN {_PENDING}
    RETURNING {_cols("j")}
)
SELECT * FROM changed
UNION ALL
SELECT {_cols("j")} FROM {{s}}.jobs j
WHERE j.site = %(site)s AND j.id = %(id)s AND NOT EXISTS (SELECT 1 FROM changed)
"""

_RETRY_NOW = f"""
WITH changed AS (
    UPDATE {{s}}.jobs j SET state = 'queued', attempts = CASE WHEN j.state = 'scheduled' THEN j.attempts ELSE 0 END,
        enqueued_at = %(now)s, run_at = NULL, ended_at = NULL
    WHERE j.site = %(site)s AND j.id = %(id)s AND j.state IN ('failed', 'canceled', 'scheduled')
    RETURNING {_cols("j")}, {_notify("j.queue", "'queued'")}
)
SELECT {_cols("changed")} FROM changed
UNION ALL
SELECT {_cols("j")} FROM {{s}}.jobs j
WHERE j.site = %(site)s AND j.id = %(id)s AND NOT EXISTS (SELECT 1 FROM changed)
"""

_PURGE = f"""
DELETE FROM {{s}}.jobs WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM {{s}}.jobs
    WHERE site = %(site)s AND state IN {_DONE} AND ended_at < %(before)s
    ORDER BY ended_at LIMIT %(limit)s
))
"""

_SET_PROGRESS = """
UPDATE {s}.jobs SET progress = coalesce(%(progress)s::json, progress), meta = coalesce(%(meta)s::json, meta)
WHERE site = %(site)s AND id = %(id)s
"""

_ENQUEUE_PERIODIC_SLOT = """
INSERT INTO {s}.schedule_runs AS r (site, name, last_slot, job_id) VALUES (%(site)s, %(name)s, %(slot)s, NULL)
ON CONFLICT (site, name) DO UPDATE SET last_slot = excluded.last_slot WHERE r.last_slot < excluded.last_slot
RETURNING 1
"""


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def migrations() -> list[tuple[int, str]]:
    """The schema migrations shipped with offload, as (version, SQL), in order."""
    found: list[tuple[int, str]] = []
    for entry in resources.files("offload.stores").joinpath("sql").iterdir():
        match = _MIGRATION_RE.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    found.sort()
    if [version for version, _ in found] != list(range(1, len(found) + 1)):
        raise StoreError(f"PostgreSQL migrations are not numbered 1..n: {[v for v, _ in found]}")
    return found


class PostgresStore(Store):
    scheme = "postgresql"
    #: How many done jobs one DELETE of ``purge`` removes (each batch is its own short transaction).
    purge_batch: ClassVar[int] = 5_000
    #: How many due scheduled jobs of other queues one ``claim`` promotes at most.
    promote_batch: ClassVar[int] = 1_000

    def __init__(self, url: str, site_id: str = "default") -> None:
        super().__init__(url, site_id)
        parts = urlsplit(url)
        options = parse_qsl(parts.query, keep_blank_values=True)
        schemas = [value for key, value in options if key == "schema"]
        self.schema = schemas[-1] if schemas else "offload"
        if not _SCHEMA_RE.fullmatch(self.schema):
            raise StoreURLError(
                f"invalid schema {self.schema!r} in {self.safe_url!r}: use letters, digits and '_' "
                "(at most 63, not starting with a digit)"
            )
        kept = [(key, value) for key, value in options if key != "schema"]
        self.conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept, quote_via=quote), parts.fragment))
        self._connect_options: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in dict(kept):
            self._connect_options["connect_timeout"] = 10
        if "application_name" not in dict(kept):
            self._connect_options["application_name"] = "offload"
        self._secrets = [s for s in {parts.password or "", unquote(parts.password or "")} if s]
        self.channel = "offload_" + hashlib.sha256(f"{self.schema}\0{site_id}".encode()).hexdigest()[:40]
        quoted = f'"{self.schema}"'
        self._sql = {
            name: text.replace("{s}", quoted)
            for name, text in globals().items()
            if name.startswith("_") and name.isupper() and isinstance(text, str) and "{s}" in text
        }
        self._lock = threading.RLock()
        self._conn: Connection | None = None
        self._listen_lock = threading.Lock()
        self._listener: Connection | None = None
        self._pid = os.getpid()
        self._closed = False

    # -- connections -------------------------------------------------------------------------------------
    def _reason(self, exc: BaseException) -> str:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = "; ".join(lines)[:400] or type(exc).__name__
        for secret in self._secrets:
            reason = reason.replace(secret, "***")
        return reason

    def _connect(self) -> Connection:
        try:
            return psycopg.connect(self.conninfo, **self._connect_options)
        except psycopg.ProgrammingError as exc:  # libpq refused the URL itself (unknown option, bad port ...)
            raise StoreURLError(f"invalid PostgreSQL URL {self.safe_url}: {self._reason(exc)}") from None
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL store {self.safe_url}: {self._reason(exc)}"
            ) from None

    def _check_fork(self) -> None:
        # A forked child must not touch its parent's sockets; psycopg does not close them from the child either.
        if os.getpid() != self._pid:
            self._conn = self._listener = None
            self._pid = os.getpid()

    def _failure(self, exc: psycopg.Error, conn: Connection) -> StoreError:
        if conn.broken or conn.closed or conn.info.status != psycopg.pq.ConnStatus.OK:
            self._drop(conn)
            return StoreUnavailable(f"PostgreSQL store {self.safe_url} is unavailable: {self._reason(exc)}")
        return StoreError(f"PostgreSQL store {self.safe_url} failed: {self._reason(exc)}")

    @staticmethod
    def _usable(conn: Connection) -> bool:
        """False when an idle connection has been closed by the server (a restart, an administrator).

        An idle autocommit connection receives nothing unless the server is ending it, so one poll of the
        socket (microseconds) lets the first call after a server restart reconnect instead of failing.
        """
        if conn.closed or conn.broken:
            return False
        # The server's farewell (an error message, then end of file) may take two reads to see.
        for _ in range(3):
            try:
                if not select.select([conn.fileno()], [], [], 0)[0]:
                    break
            except (OSError, ValueError):  # ValueError: descriptor beyond select()'s range; let the query tell
                break
            try:
                conn.pgconn.consume_input()
            except psycopg.OperationalError:
                return False
        return conn.pgconn.status == psycopg.pq.ConnStatus.OK

    def _drop(self, conn: Connection) -> None:
        if conn is self._conn:
            self._conn = None
        elif conn is self._listener:
            self._listener = None
        try:
            conn.close()
        except psycopg.Error:
            pass

    @contextmanager
    def _session(self) -> Iterator[Connection]:
        """The verbs' connection (one per store, used under a lock), reconnected after a failure."""
        with self._lock:
            self._check_fork()
            if self._conn is not None and not self._usable(self._conn):
                self._drop(self._conn)
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            try:
                yield conn
            except psycopg.Error as exc:
                error = self._failure(exc, conn)
                if isinstance(error, StoreUnavailable):
                    raise error from None
                raise error from exc

    def _query(self, name: str, params: dict[str, Any]) -> list[TupleRow]:
        with self._session() as conn:
            cur = conn.execute(self._sql[name], {"site": self.site_id, **params})
            return cur.fetchall() if cur.description is not None else []

    def open(self) -> None:
        self._closed = False
        self.migrate()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conn, self._conn = self._conn, None
        listener, self._listener = self._listener, None
        for c in (conn, listener):
            if c is not None and self._pid == os.getpid():
                try:
                    c.close()
                except psycopg.Error:
                    pass

    def ping(self) -> None:
        with self._session() as conn:
            conn.execute("SELECT 1")

    def migrate(self) -> int:
        scripts = migrations()
        latest = scripts[-1][0]
        schema = sql.Identifier(self.schema)
        with self._session() as conn:
            current = self._schema_version(conn)
            if current is not None and current >= latest:
                return current
            with conn.transaction():
                # Workers starting together would otherwise race to create the same tables.
                conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"offload:{self.schema}",))
                row = conn.execute("SELECT to_regnamespace(%s) IS NULL", (schema.as_string(conn),)).fetchone()
                if row is not None and row[0]:
                    conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {}.schema_version (version integer PRIMARY KEY, "
                        "applied_at timestamptz NOT NULL DEFAULT now())"
                    ).format(schema)
                )
                row = conn.execute(
                    sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_version").format(schema)
                ).fetchone()
                version = int(row[0]) if row is not None else 0
                for number, script in scripts:
                    if number <= version:
                        continue
                    conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(schema))
                    conn.execute(script.encode())
                    conn.execute(
                        sql.SQL("INSERT INTO {}.schema_version (version) VALUES (%s)").format(schema), (number,)
                    )
                    version = number
                return version

    def _schema_version(self, conn: Connection) -> int | None:
        table = f'"{self.schema}".schema_version'
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        if row is None or not row[0]:
            return None
        row = conn.execute(f"SELECT max(version) FROM {table}").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # -- rows --------------------------------------------------------------------------------------------
    def _job(self, row: Sequence[Any]) -> Job:
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
            retry=row[14],
            timeout=row[15],
            result_json=row[16],
            error=row[17],
            errors=row[18] or [],
            worker=row[19],
            lease_until=row[20],
            lease_token=row[21],
            progress=row[22],
            meta=row[23] or {},
            unique_key=row[24],
        )

    # -- producer ----------------------------------------------------------------------------------------
    def enqueue_many(self, jobs: Sequence[Job], now: float) -> list[Job]:
        if not jobs:
            return []
        with self._session() as conn:
            return self._enqueue(conn, jobs, now, in_transaction=False)

    def _enqueue(self, conn: Connection, jobs: Sequence[Job], now: float, in_transaction: bool) -> list[Job]:
        """Insert ``jobs`` as if one by one, in rounds of one statement each.

        A round inserts every job that shares no id and no unique key with an earlier job still to place,
        and looks up the pending job blocking each of the others. Almost every batch is done in one round;
        a job whose earlier twin turned out to be a duplicate itself waits for the next round.
        """
        results: list[Job | None] = [None] * len(jobs)
        todo = list(range(len(jobs)))
        for _ in range(len(jobs) + 20):
            insert, seen_ids, seen_keys = [], set(), set()
            for i in todo:
                job = jobs[i]
                insert.append(job.id not in seen_ids and (job.unique_key is None or job.unique_key not in seen_keys))
                seen_ids.add(job.id)
                if job.unique_key is not None:
                    seen_keys.add(job.unique_key)
            params = self._enqueue_params([jobs[i] for i in todo], insert, now)
            try:
                if in_transaction:
                    with conn.transaction():  # a savepoint, so a lost race can be retried
                        rows = conn.execute(self._sql["_ENQUEUE"], params).fetchall()
                else:
                    rows = conn.execute(self._sql["_ENQUEUE"], params).fetchall()
            except psycopg.errors.UniqueViolation:
                continue  # another client took a unique key since our snapshot: look again
            self._place(jobs, todo, insert, rows, now, results)
            todo = [i for i in todo if results[i] is None]
            if not todo:
                return [job for job in results if job is not None]
        raise StoreError(f"PostgreSQL store {self.safe_url}: enqueue kept racing with other clients; try again")

    def _place(
        self,
        jobs: Sequence[Job],
        todo: list[int],
        insert: list[bool],
        rows: list[TupleRow],
        now: float,
        results: list[Job | None],
    ) -> None:
        """Record the outcome of one enqueue round in ``results`` (None: still to place)."""
        inserted = {row[2] for row in rows if row[0] is None}
        blocking = {int(row[0]) - 1: (row[1] == 1, self._job(row[2:])) for row in rows if row[0] is not None}
        # Jobs of this round that share an id or key with an inserted job always come after it in the batch.
        by_id: dict[str, Job] = {}
        by_key: dict[str, Job] = {}
        for n, i in enumerate(todo):
            job = jobs[i]
            if insert[n] and job.id in inserted:
                stored = dataclasses.replace(job, duplicate=False)
                if job.state == QUEUED:
                    stored.enqueued_at = now
                results[i] = by_id[job.id] = stored
                if job.unique_key is not None:
                    by_key[job.unique_key] = stored
        for n, i in enumerate(todo):
            job = jobs[i]
            if results[i] is not None:
                continue
            by_id_match, found = blocking.get(n, (False, None))
            # The order enqueue checks in: a pending job with this id first, then one with this unique key.
            holder = by_id.get(job.id) or (found if by_id_match else None)
            if holder is None and job.unique_key is not None:
                holder = by_key.get(job.unique_key) or found
            if holder is not None:
                results[i] = dataclasses.replace(holder, duplicate=True)

    def _enqueue_params(self, jobs: Sequence[Job], insert: list[bool], now: float) -> dict[str, Any]:
        return {
            "site": self.site_id,
            "channel": self.channel,
            "id": [j.id for j in jobs],
            "queue": [self.qname(j.queue) for j in jobs],
            "func": [j.func for j in jobs],
            "task": [j.task for j in jobs],
            "payload": [j.payload for j in jobs],
            "title": [j.title for j in jobs],
            "state": [j.state for j in jobs],
            "created_at": [float(j.created_at) for j in jobs],
            "enqueued_at": [now if j.state == QUEUED else j.enqueued_at for j in jobs],
            "run_at": [j.run_at for j in jobs],
            "attempts": [j.attempts for j in jobs],
            "max_attempts": [j.max_attempts for j in jobs],
            "retry": [_dump(j.retry) for j in jobs],
            "timeout": [j.timeout for j in jobs],
            "meta": [_dump(j.meta or {}) for j in jobs],
            "unique_key": [j.unique_key for j in jobs],
            "insert": insert,
        }

    # -- worker ------------------------------------------------------------------------------------------
    def claim(self, queues: Sequence[str], worker_id: str, lease: float, limit: int, now: float) -> list[Job]:
        if limit <= 0 or not queues:
            return []
        rows = self._query("_CLAIM", {
            "queues": [self.qname(q) for q in queues],
            "limit": limit,
            "now": now,
            "lease_until": now + lease,
            "worker": worker_id,
            "promote": self.promote_batch,
            "channel": self.channel,
        })
        return [self._job(row[1:]) for row in rows]

    def extend_leases(self, worker_id: str, held: dict[str, str], lease: float, now: float) -> list[str]:
        if not held:
            return []
        rows = self._query("_EXTEND", {"id": list(held), "token": list(held.values()), "until": now + lease})
        kept = {row[0] for row in rows}
        return [job_id for job_id in held if job_id not in kept]

    def settle(self, outcomes: Sequence[Outcome], now: float) -> list[bool]:
        if not outcomes:
            return []
        failing = ("fail", "retry")
        rows = self._query("_SETTLE", {
            "channel": self.channel,
            "id": [o.job_id for o in outcomes],
            "token": [o.token for o in outcomes],
            "kind": [o.kind for o in outcomes],
            "result": [o.result_json for o in outcomes],
            "error": [_dump(o.error or {}) if o.kind in failing else None for o in outcomes],
            "retry_at": [(o.retry_at if o.retry_at is not None else now) if o.kind == "retry" else None
                         for o in outcomes],
            "ended_at": [o.ended_at or now for o in outcomes],
        })
        settled = {int(row[0]) - 1 for row in rows}
        return [n in settled for n in range(len(outcomes))]

    def requeue_expired(self, now: float) -> list[Job]:
        rows = self._query("_REQUEUE_EXPIRED", {"now": now, "channel": self.channel})
        return [self._job(row) for row in rows]

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        if not self._listen_lock.acquire(timeout=max(0.0, timeout)):
            return False  # another thread of this store is waiting; our time is up
        try:
            return self._wait(queues, deadline)
        finally:
            self._listen_lock.release()

    def _listening(self) -> Connection:
        self._check_fork()
        if self._listener is None or self._listener.closed:
            conn = self._connect()
            try:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            except psycopg.Error as exc:
                conn.close()
                raise StoreUnavailable(f"PostgreSQL store {self.safe_url} cannot LISTEN: {self._reason(exc)}") \
                    from None
            self._listener = conn
        return self._listener

    def _wait(self, queues: Sequence[str], deadline: float) -> bool:
        names = [self.qname(q) for q in queues]
        for attempt in (1, 2):
            conn = self._listening()
            try:
                return self._wait_on(conn, names, deadline)
            except psycopg.Error as exc:
                if self._closed:
                    return False
                error = self._failure(exc, conn)
                # Waiting again on a new connection is always safe (it checks first): do it once, so a
                # server restart while a worker sleeps costs it nothing.
                if attempt == 2 or not isinstance(error, StoreUnavailable):
                    raise error from None
        return False  # not reached

    def _wait_on(self, conn: Connection, names: list[str], deadline: float) -> bool:
        wanted = set(names)
        check = True
        next_due: float | None = None
        while True:
            if check:
                # Anything notified so far is committed, so the check below sees it: drop those wake-ups.
                for _ in conn.notifies(timeout=0.0):
                    pass
                row = conn.execute(self._sql["_WORK_READY"], {"queues": names, "site": self.site_id}).fetchone()
                assert row is not None
                next_due = row[1]
                if row[0] or (next_due is not None and next_due <= time.time()):
                    return True
                check = False
            wait = deadline - time.monotonic()
            if wait <= 0:
                return False
            if next_due is not None:
                wait = min(wait, max(0.0, next_due - time.time()) + 0.0005)
            for note in conn.notifies(timeout=wait, stop_after=1):
                if note.payload in wanted:
                    return True
                if note.payload == "":
                    check = True
            if next_due is not None and time.time() >= next_due:
                check = True

    def set_progress(self, job_id: str, progress: dict[str, Any] | None, meta: dict[str, Any] | None) -> bool:
        with self._session() as conn:
            cur = conn.execute(
                self._sql["_SET_PROGRESS"], {"site": self.site_id, "id": job_id,
                                             "progress": _dump(progress), "meta": _dump(meta)}
            )
            return cur.rowcount == 1

    # -- management --------------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        rows = self._query("_GET", {"id": job_id})
        return self._job(rows[0]) if rows else None

    def _where(self, queues: Sequence[str] | None, states: Sequence[str] | None) -> tuple[str, dict[str, Any]]:
        clauses = ["j.site = %(site)s"]
        params: dict[str, Any] = {"site": self.site_id}
        if queues is not None:
            clauses.append("j.queue = ANY(%(queues)s::text[])")
            params["queues"] = [self.qname(q) for q in queues]
        if states is not None:
            clauses.append("j.state = ANY(%(states)s::text[])")
            params["states"] = list(states)
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
        query = (
            f'SELECT {_cols("j")} FROM "{self.schema}".jobs j WHERE {where} '
            f"ORDER BY j.created_at {order}, j.seq {order} LIMIT %(limit)s OFFSET %(offset)s"
        )
        with self._session() as conn:
            rows = conn.execute(query, {**params, "limit": limit, "offset": offset}).fetchall()
        return [self._job(r) for r in rows]

    def count(self, queues: Sequence[str] | None = None, states: Sequence[str] | None = None) -> int:
        where, params = self._where(queues, states)
        with self._session() as conn:
            row = conn.execute(f'SELECT count(*) FROM "{self.schema}".jobs j WHERE {where}', params).fetchone()
        return int(row[0]) if row is not None else 0

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        with self._session() as conn:
            rows = conn.execute(
                f'SELECT queue, state, count(*) FROM "{self.schema}".jobs WHERE site = %s GROUP BY queue, state',
                (self.site_id,),
            ).fetchall()
        for queue, state, n in rows:
            out.setdefault(self.unqname(queue), {})[state] = int(n)
        return out

    def cancel(self, job_id: str, now: float) -> Job | None:
        rows = self._query("_CANCEL", {"id": job_id, "now": now})
        return self._job(rows[0]) if rows else None

    def retry_now(self, job_id: str, now: float) -> Job | None:
        params = {"site": self.site_id, "id": job_id, "now": now, "channel": self.channel}
        with self._session() as conn:
            try:
                rows = conn.execute(self._sql["_RETRY_NOW"], params).fetchall()
            except psycopg.errors.UniqueViolation:
                # Another pending job holds its unique key: leave this one as it is.
                rows = conn.execute(self._sql["_GET"], params).fetchall()
        return self._job(rows[0]) if rows else None

    def delete(self, job_id: str) -> bool:
        with self._session() as conn:
            cur = conn.execute(f'DELETE FROM "{self.schema}".jobs WHERE site = %s AND id = %s', (self.site_id, job_id))
            return cur.rowcount == 1

    def clear(self, queues: Sequence[str] | None = None) -> int:
        where, params = self._where(queues, ("queued", "scheduled"))
        with self._session() as conn:
            return conn.execute(f'DELETE FROM "{self.schema}".jobs j WHERE {where}', params).rowcount

    def purge(self, ended_before: float, limit: int = 10_000) -> int:
        total = 0
        while total < limit:
            batch = min(self.purge_batch, limit - total)
            with self._session() as conn:
                deleted = conn.execute(self._sql["_PURGE"], {
                    "site": self.site_id, "before": ended_before, "limit": batch,
                }).rowcount
            total += deleted
            if deleted < batch:
                break
        return total

    # -- workers -----------------------------------------------------------------------------------------
    def register_worker(self, info: WorkerInfo) -> None:
        with self._session() as conn:
            conn.execute(
                f'INSERT INTO "{self.schema}".workers (site, id, last_seen, info) VALUES (%s, %s, %s, %s::json) '
                "ON CONFLICT (site, id) DO UPDATE SET last_seen = excluded.last_seen, info = excluded.info",
                (self.site_id, info.id, info.last_seen, _dump(info.to_dict())),
            )

    def unregister_worker(self, worker_id: str) -> None:
        with self._session() as conn:
            conn.execute(f'DELETE FROM "{self.schema}".workers WHERE site = %s AND id = %s', (self.site_id, worker_id))

    def list_workers(self, seen_after: float) -> builtins.list[WorkerInfo]:
        with self._session() as conn:
            rows = conn.execute(
                f'SELECT info FROM "{self.schema}".workers WHERE site = %s AND last_seen > %s ORDER BY id',
                (self.site_id, seen_after),
            ).fetchall()
        return [WorkerInfo(**row[0]) for row in rows]

    # -- schedules ---------------------------------------------------------------------------------------
    def enqueue_periodic(self, name: str, slot: float, job: Job, now: float) -> bool:
        with self._session() as conn, conn.transaction():
            # The row lock taken here serialises racing schedulers; losers see the recorded slot and stop.
            won = conn.execute(
                self._sql["_ENQUEUE_PERIODIC_SLOT"], {"site": self.site_id, "name": name, "slot": slot}
            ).fetchone()
            if won is None:
                return False
            stored = self._enqueue(conn, [job], now, in_transaction=True)[0]
            conn.execute(
                f'UPDATE "{self.schema}".schedule_runs SET job_id = %s WHERE site = %s AND name = %s',
                (stored.id, self.site_id, name),
            )
        return True

    def schedule_runs(self) -> dict[str, ScheduleRun]:
        with self._session() as conn:
            rows = conn.execute(
                f'SELECT name, last_slot, job_id FROM "{self.schema}".schedule_runs WHERE site = %s', (self.site_id,)
            ).fetchall()
        return {name: ScheduleRun(name, last_slot, job_id) for name, last_slot, job_id in rows}

    # -- records -----------------------------------------------------------------------------------------
    def put_record(self, kind: str, key: str, data: dict[str, Any]) -> None:
        with self._session() as conn:
            conn.execute(
                f'INSERT INTO "{self.schema}".records (site, kind, key, data) VALUES (%s, %s, %s, %s::json) '
                "ON CONFLICT (site, kind, key) DO UPDATE SET data = excluded.data",
                (self.site_id, kind, key, _dump(data)),
            )

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        with self._session() as conn:
            row = conn.execute(
                f'SELECT data FROM "{self.schema}".records WHERE site = %s AND kind = %s AND key = %s',
                (self.site_id, kind, key),
            ).fetchone()
        return None if row is None else dict(row[0])

    def list_records(self, kind: str) -> builtins.list[tuple[str, dict[str, Any]]]:
        with self._session() as conn:
            rows = conn.execute(
                f'SELECT key, data FROM "{self.schema}".records WHERE site = %s AND kind = %s ORDER BY key',
                (self.site_id, kind),
            ).fetchall()
        return [(key, dict(data)) for key, data in rows]

    def delete_record(self, kind: str, key: str) -> bool:
        with self._session() as conn:
            cur = conn.execute(
                f'DELETE FROM "{self.schema}".records WHERE site = %s AND kind = %s AND key = %s',
                (self.site_id, kind, key),
            )
            return cur.rowcount == 1
