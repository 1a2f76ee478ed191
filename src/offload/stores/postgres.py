"""The PostgreSQL engine: ``postgresql://user:password@host:5432/dbname?schema=offload``.

The URL is a libpq URL. ``schema`` (default ``offload``) is offload's own option and is removed before
connecting; every other query parameter (``sslmode``, ``connect_timeout``, ``options`` ...) goes to libpq as it
is. All tables live in that schema, which ``migrate()`` creates when it is missing (``open()`` migrates);
sites share it, told apart by the ``site`` column of every table and by queue names stored as ``<site>:<queue>``.

How it is built, and why:

- **One round trip per verb.** Each verb is one statement in autocommit mode; batches travel as one JSON
  document (``json.dumps`` is C, psycopg's per-column array dumping is Python). ``enqueue_many`` needs a second
  round only for a batch holding two jobs with the same id or unique key; a single ``enqueue`` is a plain
  INSERT, and only a job whose id or unique key is taken takes a second round. Claims and settles set
  ``synchronous_commit = off`` for their own transaction inside the statement; enqueues wait for the WAL
  flush, which is most of their time on a local server. psycopg prepares statements after a
  few uses, and the connection asks for generic plans: left to itself, PostgreSQL re-plans the claim statement
  on every call, which costs more than running it.
- **Claim** locks queue heads with ``FOR UPDATE SKIP LOCKED``, earlier queues first, FIFO by ``(enqueued_at,
  seq)``. Due scheduled jobs of those queues are claimed straight from ``scheduled`` (a statement cannot see
  rows its own CTE promoted); other due jobs of the site are promoted, at most ``promote_batch`` per claim.
- **Plans that need no statistics** (a table that grew fast since the last ANALYZE): rows are found by per-row
  LATERAL probes of a unique or partial index and changed through their ``ctid``. A row changed by another
  client after the probe has a new ctid, fails the recheck and is left alone.
- **Times** are the caller's floats (``double precision``); the server clock is never read.
- **Indexes** are partial wherever a verb looks at one state (waiting, due, started, done), so claiming costs
  the same however long the history. ``lease_until`` is not indexed: extending a lease is a HOT update.
- **Bloat.** A queue rewrites each row several times. The jobs table has ``fillfactor = 70`` (room on every page
  for the next row version: HOT updates, pages pruned without vacuum, state changes that stay on their page)
  and vacuums after 2% churn. ``purge`` deletes in batches of ``purge_batch`` rows, oldest first, each its own
  short transaction, so retention never holds locks long or writes one huge burst of WAL.
- **Waking workers.** Verbs that make work claimable (enqueue, promote, release, retry, requeue) call
  ``pg_notify`` on a channel private to the schema and site, with the stored queue name as payload (empty: the
  schedule changed). ``wait_for_work`` LISTENs on a connection of its own, checks for work, then sleeps on the
  socket until a notification for its queues or the next scheduled job's due time. ``claim`` reads and drops
  the notifications of a busy worker, whose listener would otherwise hold back the server's notify queue.
- **Failures.** A lost connection becomes ``StoreUnavailable`` naming the URL without its password; the broken
  connection is dropped and the next call connects again (a connection the server closed while idle, as in a
  restart, is noticed before use). Connections never cross ``fork()``.
- **Migrations** are the files ``sql/postgres_NNNN_*.sql``, applied in order in one transaction under
  ``pg_advisory_xact_lock``, recorded in ``<schema>.schema_version``.
"""

from __future__ import annotations

import builtins
import collections
import hashlib
import json
import os
import re
import select
import selectors
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from offload import codec
from offload.errors import StoreError, StoreUnavailable, StoreURLError
from offload.jobs import QUEUED, SCHEDULED, STARTED, Job, Outcome, ScheduleRun, WorkerInfo
from offload.stores.base import Store, mark_stored
from offload.stores.postgres_sql import JOB_FIELDS, STATEMENTS, columns

Connection = psycopg.Connection[TupleRow]

_SCHEMA_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_MIGRATION_RE = re.compile(r"postgres_(\d{4})_\w+\.sql")

def _literal(conn: Connection) -> psycopg.ClientCursor[TupleRow]:
    """A cursor that binds parameters client-side. The management queries (list, count, counts) filter on
    lists of queues and states whose best plan depends on the values: sent as literals they get a plan made
    for them (an index scan, ~0.5 ms at 100,000 jobs), not the connection's generic plan (a sequential scan,
    ~50 ms, growing with the history). Values are quoted by psycopg."""
    return psycopg.ClientCursor(conn)


def _readable(fd: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``fd`` to become readable."""
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    except ValueError:  # a descriptor number beyond select()'s limit
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            return bool(selector.select(timeout))


_encode = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps(..., separators=) builds one per call


def _dump(value: Any) -> str | None:
    return None if value is None else _encode(value)


def _float(number: float | None) -> str | None:
    """A float parameter as text (``repr`` round-trips it exactly): its type must not depend on whether it is
    NULL, nor (for an int) on its size."""
    return None if number is None else repr(float(number))


def _clone(job: Job, duplicate: bool) -> Job:
    """A shallow copy of ``job`` (copy.copy is several times slower on a dataclass this wide)."""
    fields = job.__dict__.copy()
    fields["duplicate"] = duplicate
    twin: Job = object.__new__(Job)
    twin.__dict__ = fields
    return twin


def migrations() -> list[tuple[int, str]]:
    """The schema migrations shipped with offload, as (version, SQL), in order."""
    found: list[tuple[int, str]] = []
    # Plain reads beside this module: the package is always installed as files (importlib.resources would add
    # ~10 ms of imports to every process that opens a PostgreSQL store).
    folder = os.path.join(os.path.dirname(__file__), "sql")
    for name in os.listdir(folder):
        match = _MIGRATION_RE.fullmatch(name)
        if match:
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                found.append((int(match.group(1)), f.read()))
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
        query = urlencode(kept, quote_via=quote)  # libpq decodes %20 but not '+'
        self._conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
        self._connect_options: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in dict(kept):
            self._connect_options["connect_timeout"] = 10
        if "application_name" not in dict(kept):
            self._connect_options["application_name"] = "offload"
        self._secrets = [s for s in {parts.password or "", unquote(parts.password or "")} if s]
        self.channel = "offload_" + hashlib.sha256(f"{self.schema}\0{site_id}".encode()).hexdigest()[:40]
        quoted = f'"{self.schema}"'
        self._sql = {name: text.replace("{s}", quoted) for name, text in STATEMENTS.items()}
        self._enqueue_sql: str | None = None
        self._lock = threading.RLock()
        self._conn: Connection | None = None
        self._listen_lock = threading.Lock()
        self._listener: Connection | None = None
        self._wakeups: collections.deque[str] = collections.deque()  # notification payloads not yet read
        self._lost: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._pid = os.getpid()
        self._closed = False
        self._analyze_after: int | None = None  # see _young_jobs_table

    # -- connections -------------------------------------------------------------------------------------
    def _reason(self, exc: BaseException) -> str:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = "; ".join(lines)[:400] or type(exc).__name__
        for secret in self._secrets:
            reason = reason.replace(secret, "***")
        return reason

    def _connect(self) -> Connection:
        try:
            conn = psycopg.connect(self._conninfo, **self._connect_options)
        except psycopg.ProgrammingError as exc:  # libpq refused the URL itself (unknown option, bad port ...)
            raise StoreURLError(f"invalid PostgreSQL URL {self.safe_url}: {self._reason(exc)}") from None
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL store {self.safe_url}: {self._reason(exc)} "
                "(check that the server is up and the store URL is right)"
            ) from None
        self._watch(conn)
        if "plan_cache_mode" not in self._conninfo:
            # The hot statements are shaped to need no statistics; left on "auto", PostgreSQL re-plans the
            # claim on every call (about 1 ms, more than running it).
            try:
                conn.execute("SET plan_cache_mode = force_generic_plan")
            except psycopg.Error as exc:
                conn.close()
                raise StoreUnavailable(
                    f"PostgreSQL store {self.safe_url} is unavailable: {self._reason(exc)}"
                ) from None
        return conn

    def _check_fork(self) -> None:
        # A forked child must not touch its parent's sockets; psycopg does not close them from the child either.
        if os.getpid() != self._pid:
            self._conn = self._listener = None
            self._pid = os.getpid()

    def _failure(self, exc: psycopg.Error, conn: Connection) -> StoreError:
        if conn.broken or conn.closed or conn in self._lost or conn.info.status != psycopg.pq.ConnStatus.OK:
            self._drop(conn)
            return StoreUnavailable(f"PostgreSQL store {self.safe_url} is unavailable: {self._reason(exc)}")
        return StoreError(f"PostgreSQL store {self.safe_url} failed: {self._reason(exc)}")

    def _usable(self, conn: Connection) -> bool:
        """False when an idle connection has been closed by the server (a restart, an administrator).

        An idle autocommit connection receives nothing unless the server is ending it, so one poll of the
        socket (microseconds) lets the first call after a server restart reconnect instead of failing.
        """
        if conn.closed or conn.broken or conn in self._lost:
            return False
        for _ in range(3):  # the server's farewell (FATAL, then end of file) may take more than one read
            try:
                if not _readable(conn.fileno(), 0.0):
                    break
            except OSError:
                return False
            try:
                conn.pgconn.consume_input()
                conn.pgconn.is_busy()  # parses what was read: a FATAL reaches _watch's notice handler
            except psycopg.OperationalError:
                return False
        return conn not in self._lost and conn.pgconn.status == psycopg.pq.ConnStatus.OK

    def _watch(self, conn: Connection) -> None:
        """Remember a connection the server said it is ending (a FATAL message received while idle)."""
        ref, lost = weakref.ref(conn), self._lost

        def on_notice(diagnostic: psycopg.errors.Diagnostic) -> None:
            if diagnostic.severity_nonlocalized in ("FATAL", "PANIC") and (dying := ref()) is not None:
                lost.add(dying)

        conn.add_notice_handler(on_notice)

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
        """Run the named statement (each returns rows), one round trip in autocommit mode."""
        with self._session() as conn:
            return conn.execute(self._sql[name], {"site": self.site_id, **params}).fetchall()

    def open(self) -> None:
        self._closed = False
        self.migrate()
        self._analyze_after = self._young_jobs_table()

    # A young jobs table (never analysed: PostgreSQL has no statistics yet) gets generic plans that look a job
    # up by id through an index on the site alone (every index looks equally cheap on an empty table), so each
    # enqueue reads every row of the site until autovacuum first analyses the table, up to a minute later. A
    # process that opened the store on such a table analyses it itself once it has added this many jobs; the
    # new statistics invalidate every connection's cached plans.
    YOUNG_TABLE_ANALYZE_AFTER = 1000

    def _young_jobs_table(self) -> int | None:
        with self._session() as conn:
            row = conn.execute("SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)",
                               (f'"{self.schema}".jobs',)).fetchone()
        young = row is not None and row[0] is not None and row[0] < self.YOUNG_TABLE_ANALYZE_AFTER
        return self.YOUNG_TABLE_ANALYZE_AFTER if young else None

    def _count_enqueued(self, conn: Connection, n: int) -> None:
        if self._analyze_after is None:
            return
        self._analyze_after -= n
        if self._analyze_after <= 0:
            self._analyze_after = None
            try:
                conn.execute(sql.SQL("ANALYZE {}.jobs").format(sql.Identifier(self.schema)))
            except psycopg.Error:  # not the table's owner (a warning, not an error, on current servers)
                pass

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
                self._enqueue_sql = None
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
        job = Job(**dict(zip(JOB_FIELDS, row[: len(JOB_FIELDS)], strict=True)))
        job.queue = self.unqname(job.queue)
        job.errors = job.errors or []
        job.meta = job.meta or {}
        return job

    # -- producer ----------------------------------------------------------------------------------------
    def enqueue_many(self, jobs: Sequence[Job], now: float) -> list[Job]:
        if not jobs:
            return []
        with self._session() as conn:
            added = self._enqueue(conn, jobs, now, in_transaction=False)
            self._count_enqueued(conn, len(jobs))
            return added

    def _enqueue(self, conn: Connection, jobs: Sequence[Job], now: float, in_transaction: bool) -> list[Job]:
        """Insert ``jobs`` as if one by one, in rounds of one statement each.

        A round inserts every job that shares no id and no unique key with an earlier job still to place,
        and looks up the pending job blocking each of the others. Almost every batch is done in one round;
        a job whose earlier twin turned out to be a duplicate itself waits for the next round.
        """
        if len(jobs) == 1 and (stored := self._enqueue_new(conn, jobs[0], now)) is not None:
            return [stored]
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
            statement = self._enqueue_statement(conn)
            try:
                if in_transaction:
                    with conn.transaction():  # a savepoint, so a lost race can be retried
                        rows = conn.execute(statement, params).fetchall()
                else:
                    rows = conn.execute(statement, params).fetchall()
            except psycopg.errors.UniqueViolation:
                continue  # another client took a unique key since our snapshot: look again
            self._place(jobs, todo, insert, rows, now, results)
            todo = [i for i in todo if results[i] is None]
            if not todo:
                return [job for job in results if job is not None]
        raise StoreError(f"PostgreSQL store {self.safe_url}: enqueue kept racing with other clients; try again")

    def _enqueue_new(self, conn: Connection, job: Job, now: float) -> Job | None:
        """Insert ``job`` if its id and unique key are free (no savepoint needed: a conflict is no error);
        None when either is taken."""
        # fmt: off
        params = {
            "site": self.site_id, "channel": self.channel, "id": job.id, "queue": self.prefix + job.queue,
            "func": job.func, "task": job.task, "payload": job.payload, "title": job.title, "state": job.state,
            "created_at": _float(job.created_at),
            "enqueued_at": _float(now if job.state == QUEUED else job.enqueued_at), "run_at": _float(job.run_at),
            "attempts": str(int(job.attempts)), "max_attempts": str(int(job.max_attempts)),
            "retry": _dump(job.retry), "timeout": _float(job.timeout), "meta": codec.dump_meta(job.meta),
            "unique_key": job.unique_key,
        }
        # fmt: on
        if not conn.execute(self._sql["enqueue_new"], params).fetchall():
            return None
        return mark_stored(job, now)

    def _enqueue_statement(self, conn: Connection) -> str:
        """The enqueue statement, naming the sequence behind ``jobs.seq`` (looked up once)."""
        if self._enqueue_sql is None:
            table = f'"{self.schema}".jobs'
            row = conn.execute("SELECT pg_get_serial_sequence(%s, 'seq')", (table,)).fetchone()
            if row is None or row[0] is None:
                raise StoreError(f"PostgreSQL store {self.safe_url}: {table} has no seq column; run migrations")
            self._enqueue_sql = self._sql["enqueue"].replace("{seq}", row[0])
        return self._enqueue_sql

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
        inserted = {row[2] for row in rows if row[0] is None and row[2] is not None}
        blocking: dict[int, tuple[bool, Job]] = {}
        for row in sorted((r for r in rows if r[0] is not None), key=lambda r: -int(r[1])):
            blocking[int(row[0]) - 1] = (row[1] == 1, self._job(row[3]))  # a match by id wins over one by key
        # Jobs of this round that share an id or key with an inserted job always come after it in the batch.
        by_id: dict[str, Job] = {}
        by_key: dict[str, Job] = {}
        for n, i in enumerate(todo):
            job = jobs[i]
            if insert[n] and job.id in inserted:
                results[i] = by_id[job.id] = stored = mark_stored(job, now)
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
                results[i] = _clone(holder, duplicate=True)

    def _enqueue_params(self, jobs: Sequence[Job], insert: builtins.list[bool], now: float) -> dict[str, Any]:
        # fmt: off
        rows = [
            [j.id, self.prefix + j.queue, j.func, j.task, j.payload, j.title, j.state, j.created_at,
             now if j.state == QUEUED else j.enqueued_at, j.run_at, j.attempts, j.max_attempts, _dump(j.retry),
             j.timeout, codec.dump_meta(j.meta), j.unique_key, ins]
            for j, ins in zip(jobs, insert, strict=True)
        ]
        # fmt: on
        return {"site": self.site_id, "channel": self.channel, "jobs": _dump(rows)}

    # -- worker ------------------------------------------------------------------------------------------
    def claim(self, queues: Sequence[str], worker_id: str, lease: float, limit: int, now: float) -> list[Job]:
        if limit <= 0 or not queues:
            return []
        self._discard_wakeups()
        queues = [self.qname(q) for q in dict.fromkeys(queues)]  # a queue listed twice is served once
        params = {"queues": queues, "limit": limit, "now": now, "lease_until": now + lease, "worker": worker_id}
        rows = self._query("claim", {**params, "promote": self.promote_batch, "channel": self.channel})
        return [self._job(row[1:]) for row in rows]

    def extend_leases(self, worker_id: str, held: dict[str, str], lease: float, now: float) -> list[str]:
        if not held:
            return []
        rows = self._query("extend", {"held": _dump(held), "until": now + lease})
        kept = {row[0] for row in rows}
        return [job_id for job_id in held if job_id not in kept]

    def settle(self, outcomes: Sequence[Outcome], now: float) -> list[bool]:
        if not outcomes:
            return []
        # fmt: off
        rows = [
            [o.job_id, o.token, o.kind, o.result_json,
             _dump(o.error or {}) if o.kind in ("fail", "retry") else None,
             (o.retry_at if o.retry_at is not None else now) if o.kind == "retry" else None,
             o.ended_at or now]
            for o in outcomes
        ]
        # fmt: on
        done = self._query("settle", {"outcomes": _dump(rows), "channel": self.channel})
        settled = {int(row[0]) - 1 for row in done}
        return [n in settled for n in range(len(outcomes))]

    def requeue_expired(self, now: float) -> list[Job]:
        rows = self._query("requeue_expired", {"now": now, "channel": self.channel})
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
            wakeups = self._wakeups
            wakeups.clear()
            # Notifications that arrive while a query runs on this connection are kept by this handler;
            # those that arrive while it is idle are read in _receive.
            conn.add_notify_handler(lambda note: wakeups.append(note.payload))
            try:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            except psycopg.Error as exc:
                conn.close()
                raise StoreUnavailable(f"PostgreSQL store {self.safe_url} cannot LISTEN: {self._reason(exc)}") from None
            self._listener = conn
        return self._listener

    def _receive(self, conn: Connection, timeout: float) -> None:
        """Add the notifications that arrive within ``timeout`` seconds to ``self._wakeups``."""
        if self._wakeups:
            return
        if not _readable(conn.fileno(), timeout):
            return
        conn.pgconn.consume_input()  # raises OperationalError when the server has gone
        while (note := conn.pgconn.notifies()) is not None:
            self._wakeups.append(note.extra.decode(errors="replace"))
        if conn in self._lost or conn.pgconn.status != psycopg.pq.ConnStatus.OK:
            raise psycopg.OperationalError("the server closed the connection")

    def _discard_wakeups(self) -> None:
        """Read and drop the notifications that arrived while no one was waiting.

        A busy worker claims without waiting, and a listener that is never read holds back the server's
        notification queue (and, once that fills, every NOTIFY). Dropping them is safe: a wait checks first.
        """
        listener = self._listener
        if listener is None or not self._listen_lock.acquire(blocking=False):
            return
        try:
            if listener is self._listener and not listener.closed:
                self._receive(listener, 0.0)
                self._wakeups.clear()
        except psycopg.Error:
            self._drop(listener)
        finally:
            self._listen_lock.release()

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
                # Whatever was notified so far is committed, so the check below sees it: drop those wake-ups.
                # Notifications that arrive from here on are kept, so none is missed between check and sleep.
                self._receive(conn, 0.0)
                self._wakeups.clear()
                row = conn.execute(self._sql["work_ready"], {"queues": names, "site": self.site_id}).fetchone()
                assert row is not None
                next_due = row[1]
                if row[0] or (next_due is not None and next_due <= time.time()):
                    return True
                check = False
            wait = deadline - time.monotonic()
            if wait <= 0 or self._closed:
                return False
            if next_due is not None:
                wait = min(wait, max(0.0, next_due - time.time()) + 0.0005)
            self._receive(conn, wait)
            while self._wakeups:
                payload = self._wakeups.popleft()
                if payload in wanted:
                    return True
                check = check or payload == ""
            if next_due is not None and time.time() >= next_due:
                check = True

    def set_progress(self, job_id: str, progress: dict[str, Any] | None, meta: dict[str, Any] | None) -> bool:
        with self._session() as conn:
            cur = conn.execute(
                self._sql["set_progress"],
                {"site": self.site_id, "id": job_id, "progress": _dump(progress), "meta": _dump(meta)},
            )
            return cur.rowcount == 1

    # -- management --------------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        rows = self._query("get", {"id": job_id})
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
            f'SELECT {columns("j")} FROM "{self.schema}".jobs j WHERE {where} '
            f"ORDER BY j.created_at {order}, j.seq {order} LIMIT %(limit)s OFFSET %(offset)s"
        )
        with self._session() as conn:
            rows = _literal(conn).execute(query, {**params, "limit": limit, "offset": offset}).fetchall()
        return [self._job(r) for r in rows]

    # Each pending state has a partial index whose rows are only that state's jobs; counting one state
    # through its index costs what is pending, however long the history (a condition on several states at
    # once matches no partial index, and a count over the site's rows reads every finished job).
    _PENDING_COUNT: ClassVar[dict[str, str]] = {
        QUEUED: "j.state = 'queued' AND j.queue >= %(lo)s AND j.queue < %(hi)s",  # jobs_claim, by queue prefix
        STARTED: "j.state = 'started'",  # jobs_started (site)
        SCHEDULED: "j.state = 'scheduled'",  # jobs_due (site, run_at)
    }

    def count(self, queues: Sequence[str] | None = None, states: Sequence[str] | None = None) -> int:
        if states is not None and queues is None and states and set(states) <= set(self._PENDING_COUNT):
            # The queue names of this site are the ones that start with its prefix; the site check on each row
            # found keeps that exact even if another site's id began with this one's prefix.
            parts = [f'(SELECT count(*) FROM "{self.schema}".jobs j WHERE {self._PENDING_COUNT[state]} '
                     "AND j.site = %(site)s)" for state in dict.fromkeys(states)]
            params = {"site": self.site_id, "lo": self.prefix, "hi": self.prefix[:-1] + chr(ord(self.prefix[-1]) + 1)}
            with self._session() as conn:
                row = _literal(conn).execute("SELECT " + " + ".join(parts), params).fetchone()
            return int(row[0]) if row is not None else 0
        where, params = self._where(queues, states)
        with self._session() as conn:
            query = f'SELECT count(*) FROM "{self.schema}".jobs j WHERE {where}'
            row = _literal(conn).execute(query, params).fetchone()
        return int(row[0]) if row is not None else 0

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        with self._session() as conn:
            rows = _literal(conn).execute(
                f'SELECT queue, state, count(*) FROM "{self.schema}".jobs WHERE site = %s GROUP BY queue, state',
                (self.site_id,),
            ).fetchall()
        for queue, state, n in rows:
            out.setdefault(self.unqname(queue), {})[state] = int(n)
        return out

    def cancel(self, job_id: str, now: float) -> Job | None:
        rows = self._query("cancel", {"id": job_id, "now": now})
        return self._job(rows[0]) if rows else None

    def retry_now(self, job_id: str, now: float) -> Job | None:
        params = {"site": self.site_id, "id": job_id, "now": now, "channel": self.channel}
        with self._session() as conn:
            try:
                rows = conn.execute(self._sql["retry_now"], params).fetchall()
            except psycopg.errors.UniqueViolation:
                # Another pending job holds its unique key: leave this one as it is.
                rows = conn.execute(self._sql["get"], params).fetchall()
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
                params = {"site": self.site_id, "before": ended_before, "limit": batch}
                deleted = conn.execute(self._sql["purge"], params).rowcount
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
                self._sql["periodic_slot"], {"site": self.site_id, "name": name, "slot": slot}
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
