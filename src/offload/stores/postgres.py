"""The PostgreSQL engine: ``postgresql://user:password@host:5432/dbname?schema=offload``.

The URL is a libpq URL plus offload's own options (``postgres_url.py``): ``schema`` (default ``offload``),
``pooler`` (``transaction`` or ``statement`` behind PgBouncer in that pool mode), ``listen_url`` (a direct
URL for wake-ups beside a pooler), ``prepare_threshold`` (psycopg's), ``poll`` and ``idle_poll``. Every other
query parameter (``sslmode``, ``target_session_attrs``, ``connect_timeout`` ...) goes to libpq as it is. All
tables live in that schema, which ``migrate()`` creates when it is missing (``open()`` migrates); sites share
it, told apart by the ``site`` column of every table and by queue names stored as ``<site>:<queue>``.

How it is built, and why:

- **One round trip per verb.** Each verb is one statement in autocommit mode; batches travel as one JSON
  document (``json.dumps`` is C, psycopg's per-column array dumping is Python). ``enqueue_many`` needs a second
  round only for a batch holding two jobs with the same id or unique key; a single ``enqueue`` is a plain
  INSERT, and only a job whose id or unique key is taken takes a second round. Claims and settles set
  ``synchronous_commit = off`` for their own transaction inside the statement; enqueues wait for the WAL
  flush, which is most of their time on a local server. psycopg prepares statements after a
  few uses, and the connection asks for generic plans: left to itself, PostgreSQL re-plans the claim statement
  on every call, which costs more than running it.
- **No session state behind a pooler.** Since every verb (the periodic enqueue and the migrations included)
  is one statement, a store behind a transaction or statement pooler only has to leave out what would outlive
  its statement: psycopg's server-side prepared statements (unless ``prepare_threshold`` asks for them), the
  ``SET plan_cache_mode`` and ``LISTEN`` (``postgres_link.py``: a direct ``listen_url``, or polling).
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
  schedule changed); ``postgres_link.py`` waits for them. ``claim`` reads and drops the notifications of a
  busy worker, whose listener would otherwise hold back the server's notify queue.
- **Failures** (``postgres_link.py``): an outage (no server, a shutdown, recovery, a read-only standby) is
  ``StoreUnavailable``, anything else ``StoreError``; both carry the server's whole message and what to do.
- **Transactional enqueue** (``enqueue_in_transaction``, ``postgres_tx.py``): the same statements, run through
  the application's own connection inside its open transaction, once that connection is checked to reach
  this store's database.
- **Migrations** (``postgres_schema.py``) are the files ``sql/postgres_NNNN_*.sql``, applied in order by one
  statement under ``pg_advisory_xact_lock``, recorded in ``<schema>.schema_version``.
"""

from __future__ import annotations

import builtins
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from offload import codec
from offload.errors import StoreError
from offload.jobs import QUEUED, SCHEDULED, STARTED, Job, JobQuery, Outcome, ScheduleRun, SearchResult, WorkerInfo
from offload.stores import search_sql
from offload.stores.base import Store, mark_stored
from offload.stores.postgres_link import Connection, Link
from offload.stores.postgres_schema import migration_block, migrations
from offload.stores.postgres_sql import JOB_FIELDS, STATEMENTS, columns
from offload.stores.postgres_tx import CallerTransaction, Verified, error_state, join
from offload.stores.postgres_url import advice, parse_url, reason

__all__ = ["PostgresStore", "migrations"]

# Runs one enqueue round's statement; None when it lost a race for a unique id or key (the round is retried).
Runner = Callable[[str, dict[str, Any], bool], "list[Any] | None"]


def _literal(conn: Connection) -> psycopg.ClientCursor[TupleRow]:
    """A cursor that binds parameters client-side. The management queries (list, count, counts) filter on
    lists of queues and states whose best plan depends on the values: sent as literals they get a plan made
    for them (an index scan, ~0.5 ms at 100,000 jobs), not the connection's generic plan (a sequential scan,
    ~50 ms, growing with the history). Values are quoted by psycopg."""
    return psycopg.ClientCursor(conn)


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


class PostgresStore(Store):
    scheme = "postgresql"
    #: How many done jobs one DELETE of ``purge`` removes (each batch is its own short transaction).
    purge_batch: ClassVar[int] = 5_000
    #: How many due scheduled jobs of other queues one ``claim`` promotes at most.
    promote_batch: ClassVar[int] = 1_000

    def __init__(self, url: str, site_id: str = "default") -> None:
        super().__init__(url, site_id)
        self.options = parse_url(url)
        self.schema = self.options.schema
        self.channel = "offload_" + hashlib.sha256(f"{self.schema}\0{site_id}".encode()).hexdigest()[:40]
        quoted = f'"{self.schema}"'
        self._sql = {name: text.replace("{s}", quoted) for name, text in STATEMENTS.items()}
        self._enqueue_sql: str | None = None
        self.link = Link(self.options, site_id, self.channel, self._sql["work_ready"])
        self._verified = Verified()
        self._analyze_after: int | None = None  # see _young_jobs_table

    @property
    def safe_url(self) -> str:
        """The URL with every password hidden (the listen URL's too)."""
        return self.options.safe

    def _query(self, name: str, params: dict[str, Any]) -> list[TupleRow]:
        """Run the named statement (each returns rows), one round trip in autocommit mode."""
        with self.link.session() as conn:
            return conn.execute(self._sql[name], {"site": self.site_id, **params}).fetchall()

    def open(self) -> None:
        self.link.open()
        self.migrate()
        self._analyze_after = self._young_jobs_table()

    # A young jobs table (never analysed: PostgreSQL has no statistics yet) gets generic plans that look a job
    # up by id through an index on the site alone (every index looks equally cheap on an empty table), so each
    # enqueue reads every row of the site until autovacuum first analyses the table, up to a minute later. A
    # process that opened the store on such a table analyses it itself once it has added this many jobs; the
    # new statistics invalidate every connection's cached plans.
    YOUNG_TABLE_ANALYZE_AFTER = 1000

    def _young_jobs_table(self) -> int | None:
        with self.link.session() as conn:
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
        self.link.close()

    def ping(self) -> None:
        with self.link.session() as conn:
            conn.execute("SELECT 1")

    def migrate(self) -> int:
        scripts = migrations()
        latest = scripts[-1][0]
        with self.link.session() as conn:
            current = self._schema_version(conn)
            if current is not None and current >= latest:
                return current
            pending = [(n, script) for n, script in scripts if current is None or n > current]
            conn.execute(migration_block(self.schema, pending).encode())
            self._enqueue_sql = None
            version = self._schema_version(conn)
        if version is None or version < latest:
            raise StoreError(f"PostgreSQL store {self.safe_url}: migrations stopped at version {version} of "
                             f"{latest}; run `offload migrate` with this store URL to apply them and see why")
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
        with self.link.session() as conn:

            def run(statement: str, params: dict[str, Any], guarded: bool) -> list[Any] | None:
                try:
                    return conn.execute(statement, params).fetchall()
                except psycopg.errors.UniqueViolation:
                    return None

            added = self._enqueue(run, jobs, now)
            self._count_enqueued(conn, len(jobs))
            return added

    def enqueue_in_transaction(self, connection: Any, jobs: Sequence[Job], now: float) -> list[Job]:
        """``enqueue_many`` through the application's own ``connection`` (psycopg 3, psycopg2, or an SQLAlchemy
        Connection or Session), inside its open transaction: the jobs become visible, and wake workers, when
        that transaction commits, and vanish if it rolls back. The connection must reach this store's
        database (checked once per connection); anything else is a TypeError or StoreError saying why."""
        caller = join(connection)
        self._check_same_database(caller)
        if not jobs:
            return []

        def run(statement: str, params: dict[str, Any], guarded: bool) -> list[Any] | None:
            try:
                return caller.execute_guarded(statement, params) if guarded else caller.execute(statement, params)
            except Exception as exc:
                if not type(exc).__module__.startswith(("psycopg", "sqlalchemy")):
                    raise
                raise self._caller_error(exc, guarded) from exc

        return self._enqueue(run, jobs, now)

    def _caller_error(self, exc: BaseException, guarded: bool) -> StoreError:
        state = error_state(exc)
        hint = advice(state, str(exc), self.options)
        after = ("the transaction is as it was before the enqueue" if guarded else
                 "PostgreSQL has aborted the transaction: roll it back")
        return StoreError(
            f"enqueue inside the application's transaction failed on PostgreSQL store {self.safe_url}: "
            f"{reason(exc, self.options)}{f' ({hint})' if hint else ''}; {after}"
        )

    def _check_same_database(self, caller: CallerTransaction) -> None:
        """Refuse a connection that reaches another database than the store's: its jobs would be written
        where no worker looks."""
        ours = self.link.server_identity()
        if self._verified.get(caller.raw) == ours:
            return
        try:
            row = caller.execute(self._sql["identity"])[0]
        except Exception as exc:
            if not type(exc).__module__.startswith(("psycopg", "sqlalchemy")):
                raise
            raise self._caller_error(exc, guarded=False) from exc
        theirs = (str(row[0]), str(row[1]))
        if theirs != ours:
            self.link.identity = None  # the store may have failed over since it looked: look again first
            ours = self.link.server_identity()
        if theirs != ours:
            raise StoreError(
                f"cannot enqueue inside this transaction: its connection reaches database {theirs[0]!r} "
                f"({theirs[1]}), but PostgreSQL store {self.safe_url} is database {ours[0]!r} ({ours[1]}), so "
                "no worker would see the jobs; pass a connection to the store's database, or make the store "
                "URL (offload.store) name the application's database"
            )
        self._verified.add(caller.raw, theirs)

    def _enqueue(self, run: Runner, jobs: Sequence[Job], now: float) -> list[Job]:
        """Insert ``jobs`` as if one by one, in rounds of one statement each, through ``run``.

        A round inserts every job that shares no id and no unique key with an earlier job still to place,
        and looks up the pending job blocking each of the others. Almost every batch is done in one round;
        a job whose earlier twin turned out to be a duplicate itself waits for the next round.
        """
        if len(jobs) == 1 and run(self._sql["enqueue_new"], self._one_params(jobs[0], now), False):
            return [mark_stored(jobs[0], now)]
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
            rows = run(self._enqueue_statement(), params, True)
            if rows is None:
                continue  # another client took a unique key since our snapshot: look again
            self._place(jobs, todo, insert, rows, now, results)
            todo = [i for i in todo if results[i] is None]
            if not todo:
                return [job for job in results if job is not None]
        raise StoreError(f"PostgreSQL store {self.safe_url}: enqueue kept racing with other clients; try again")

    def _one_params(self, job: Job, now: float) -> dict[str, Any]:
        """The parameters of the single-job INSERT (numbers as text: see postgres_sql._ENQUEUE_NEW)."""
        # fmt: off
        return {
            "site": self.site_id, "channel": self.channel, "id": job.id, "queue": self.prefix + job.queue,
            "func": job.func, "task": job.task, "payload": job.payload, "title": job.title, "state": job.state,
            "created_at": _float(job.created_at),
            "enqueued_at": _float(now if job.state == QUEUED else job.enqueued_at), "run_at": _float(job.run_at),
            "attempts": str(int(job.attempts)), "max_attempts": str(int(job.max_attempts)),
            "retry": _dump(job.retry), "timeout": _float(job.timeout), "meta": codec.dump_meta(job.meta),
            "unique_key": job.unique_key, "priority": str(int(job.priority)), "limit_key": job.limit_key,
        }
        # fmt: on

    def _enqueue_statement(self) -> str:
        """The enqueue statement, naming the sequence behind ``jobs.seq`` (looked up once)."""
        if self._enqueue_sql is None:
            table = f'"{self.schema}".jobs'
            with self.link.session() as conn:
                row = conn.execute("SELECT pg_get_serial_sequence(%s, 'seq')", (table,)).fetchone()
            if row is None or row[0] is None:
                raise StoreError(f"PostgreSQL store {self.safe_url}: {table} has no seq column; run `offload migrate`")
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
            found = json.loads(row[3]) if isinstance(row[3], str) else row[3]  # psycopg2 may leave JSON as text
            blocking[int(row[0]) - 1] = (row[1] == 1, self._job(found))  # a match by id wins over one by key
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
             j.timeout, codec.dump_meta(j.meta), j.unique_key, ins, j.priority, j.limit_key]
            for j, ins in zip(jobs, insert, strict=True)
        ]
        # fmt: on
        return {"site": self.site_id, "channel": self.channel, "jobs": _dump(rows)}

    # -- worker ------------------------------------------------------------------------------------------
    def claim(self, queues: Sequence[str], worker_id: str, lease: float, limit: int, now: float) -> list[Job]:
        if limit <= 0 or not queues:
            return []
        self.link.discard_wakeups()
        queues = [self.qname(q) for q in dict.fromkeys(queues)]  # a queue listed twice is served once
        params = {"queues": queues, "limit": limit, "now": now, "lease_until": now + lease, "worker": worker_id}
        rows = self._query("claim", {**params, "promote": self.promote_batch, "channel": self.channel})
        if rows:
            self.link.found_work()
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
             (o.retry_at if o.retry_at is not None else now) if o.kind in ("retry", "snooze") else None,
             o.ended_at or now, o.payload if o.kind == "retry" else None, o.max_attempts]
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
        return self.link.wait([self.qname(q) for q in queues], timeout)

    # -- concurrency limits ------------------------------------------------------------------------------
    def set_limit(self, queue: str, concurrency: int | None) -> None:
        self._query("set_limit", {"queue": self.qname(queue), "channel": self.channel, "concurrency": concurrency})

    def set_key_limit(self, queue: str, concurrency: int | None) -> None:
        params = {"queue": self.qname(queue), "channel": self.channel, "concurrency": concurrency}
        self._query("set_key_limit", params)

    def key_limits(self) -> dict[str, int]:
        return {self.unqname(queue): n for queue, n in self._query("key_limits", {})}

    def limits(self) -> dict[str, int]:
        return {self.unqname(queue): n for queue, n in self._query("limits", {})}

    # -- paused queues -----------------------------------------------------------------------------------
    def pause(self, queue: str, now: float) -> bool:
        return bool(self._query("pause", {"queue": self.qname(queue), "now": now}))

    def resume(self, queue: str) -> bool:
        return bool(self._query("resume", {"queue": self.qname(queue), "channel": self.channel}))

    def paused(self) -> dict[str, float]:
        return {self.unqname(queue): at for queue, at in self._query("paused", {})}

    def set_progress(self, job_id: str, progress: dict[str, Any] | None, meta: dict[str, Any] | None) -> bool:
        with self.link.session() as conn:
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
        with self.link.session() as conn:
            rows = _literal(conn).execute(query, {**params, "limit": limit, "offset": offset}).fetchall()
        return [self._job(r) for r in rows]

    def search(self, query: JobQuery, limit: int = 25, offset: int = 0) -> SearchResult:
        if query.plain:
            return super().search(query, limit, offset)
        where, params = self._where(list(query.queues) if query.queues is not None else None,
                                    list(query.states) if query.states is not None else None)

        def mark(value: Any) -> str:
            name = f"p{len(params)}"
            params[name] = value
            return f"%({name})s"

        clauses = " AND ".join([where, *search_sql.conditions(query, mark, "j")])
        table = f'"{self.schema}".jobs j'
        with self.link.session() as conn:
            total = _literal(conn).execute(f"SELECT count(*) FROM {table} WHERE {clauses}", params).fetchone()
            rows = _literal(conn).execute(
                f"SELECT {columns('j')} FROM {table} WHERE {clauses} ORDER BY {search_sql.order_by(query, 'j')} "
                "LIMIT %(limit)s OFFSET %(offset)s", {**params, "limit": limit, "offset": offset}).fetchall()
        return SearchResult([self._job(r) for r in rows], int(total[0]) if total else 0)

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
            with self.link.session() as conn:
                row = _literal(conn).execute("SELECT " + " + ".join(parts), params).fetchone()
            return int(row[0]) if row is not None else 0
        where, params = self._where(queues, states)
        with self.link.session() as conn:
            query = f'SELECT count(*) FROM "{self.schema}".jobs j WHERE {where}'
            row = _literal(conn).execute(query, params).fetchone()
        return int(row[0]) if row is not None else 0

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        with self.link.session() as conn:
            rows = _literal(conn).execute(
                f'SELECT queue, state, count(*) FROM "{self.schema}".jobs WHERE site = %s GROUP BY queue, state',
                (self.site_id,),
            ).fetchall()
        for queue, state, n in rows:
            out.setdefault(self.unqname(queue), {})[state] = int(n)
        return out

    def waiting_since(self, now: float) -> dict[str, float]:
        with self.link.session() as conn:
            rows = _literal(conn).execute(
                f'SELECT queue, min(t) FROM ('
                f' SELECT queue, min(coalesce(enqueued_at, created_at)) AS t FROM "{self.schema}".jobs'
                f"  WHERE site = %s AND state = 'queued' GROUP BY queue"
                f' UNION ALL SELECT queue, min(run_at) FROM "{self.schema}".jobs'
                f"  WHERE site = %s AND state = 'scheduled' AND run_at <= %s GROUP BY queue"
                f") AS w GROUP BY queue",
                (self.site_id, self.site_id, now),
            ).fetchall()
        return {self.unqname(queue): float(t) for queue, t in rows}

    def cancel(self, job_id: str, now: float) -> Job | None:
        rows = self._query("cancel", {"id": job_id, "now": now})
        return self._job(rows[0]) if rows else None

    def retry_now(self, job_id: str, now: float) -> Job | None:
        params = {"site": self.site_id, "id": job_id, "now": now, "channel": self.channel}
        with self.link.session() as conn:
            try:
                rows = conn.execute(self._sql["retry_now"], params).fetchall()
            except psycopg.errors.UniqueViolation:
                # Another pending job holds its unique key: leave this one as it is.
                rows = conn.execute(self._sql["get"], params).fetchall()
        return self._job(rows[0]) if rows else None

    def to_front(self, job_id: str) -> bool:
        with self.link.session() as conn:
            cur = conn.execute(self._sql["to_front"], {"site": self.site_id, "id": job_id})
            return bool(cur.rowcount == 1)

    def delete(self, job_id: str) -> bool:
        with self.link.session() as conn:
            cur = conn.execute(f'DELETE FROM "{self.schema}".jobs WHERE site = %s AND id = %s', (self.site_id, job_id))
            return cur.rowcount == 1

    def clear(self, queues: Sequence[str] | None = None) -> int:
        where, params = self._where(queues, ("queued", "scheduled"))
        with self.link.session() as conn:
            return conn.execute(f'DELETE FROM "{self.schema}".jobs j WHERE {where}', params).rowcount

    def purge(self, ended_before: float, limit: int = 10_000) -> int:
        total = 0
        while total < limit:
            batch = min(self.purge_batch, limit - total)
            with self.link.session() as conn:
                params = {"site": self.site_id, "before": ended_before, "limit": batch}
                deleted = conn.execute(self._sql["purge"], params).rowcount
            total += deleted
            if deleted < batch:
                break
        return total

    # -- workers -----------------------------------------------------------------------------------------
    def register_worker(self, info: WorkerInfo) -> None:
        with self.link.session() as conn:
            conn.execute(
                f'INSERT INTO "{self.schema}".workers (site, id, last_seen, info) VALUES (%s, %s, %s, %s::json) '
                "ON CONFLICT (site, id) DO UPDATE SET last_seen = excluded.last_seen, info = excluded.info",
                (self.site_id, info.id, info.last_seen, _dump(info.to_dict())),
            )

    def unregister_worker(self, worker_id: str) -> None:
        with self.link.session() as conn:
            conn.execute(f'DELETE FROM "{self.schema}".workers WHERE site = %s AND id = %s', (self.site_id, worker_id))

    def list_workers(self, seen_after: float) -> builtins.list[WorkerInfo]:
        with self.link.session() as conn:
            rows = conn.execute(
                f'SELECT info FROM "{self.schema}".workers WHERE site = %s AND last_seen > %s ORDER BY id',
                (self.site_id, seen_after),
            ).fetchall()
        return [WorkerInfo(**row[0]) for row in rows]

    def reap_dead_workers(
        self, worker_id: str, now: float, seen_before: float, dead: Sequence[str] = ()
    ) -> builtins.list[Job]:
        rows = self._query("reap_dead_workers", {"me": worker_id, "now": now, "seen_before": seen_before,
                                                 "dead": list(dead), "channel": self.channel})
        return [self._job(row) for row in rows]

    # -- schedules ---------------------------------------------------------------------------------------
    def enqueue_periodic(self, name: str, slot: float, job: Job, now: float) -> bool:
        params = {**self._one_params(job, now), "name": name, "slot": _float(slot)}
        rows = self._query("enqueue_periodic", params)
        return bool(rows and rows[0][0])

    def schedule_runs(self) -> dict[str, ScheduleRun]:
        with self.link.session() as conn:
            rows = conn.execute(
                f'SELECT name, last_slot, job_id FROM "{self.schema}".schedule_runs WHERE site = %s', (self.site_id,)
            ).fetchall()
        return {name: ScheduleRun(name, last_slot, job_id) for name, last_slot, job_id in rows}

    # -- records -----------------------------------------------------------------------------------------
    def put_record(self, kind: str, key: str, data: dict[str, Any]) -> None:
        with self.link.session() as conn:
            conn.execute(
                f'INSERT INTO "{self.schema}".records (site, kind, key, data) VALUES (%s, %s, %s, %s::json) '
                "ON CONFLICT (site, kind, key) DO UPDATE SET data = excluded.data",
                (self.site_id, kind, key, _dump(data)),
            )

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        with self.link.session() as conn:
            row = conn.execute(
                f'SELECT data FROM "{self.schema}".records WHERE site = %s AND kind = %s AND key = %s',
                (self.site_id, kind, key),
            ).fetchone()
        return None if row is None else dict(row[0])

    def list_records(self, kind: str) -> builtins.list[tuple[str, dict[str, Any]]]:
        with self.link.session() as conn:
            rows = conn.execute(
                f'SELECT key, data FROM "{self.schema}".records WHERE site = %s AND kind = %s ORDER BY key',
                (self.site_id, kind),
            ).fetchall()
        return [(key, dict(data)) for key, data in rows]

    def delete_record(self, kind: str, key: str) -> bool:
        with self.link.session() as conn:
            cur = conn.execute(
                f'DELETE FROM "{self.schema}".records WHERE site = %s AND kind = %s AND key = %s',
                (self.site_id, kind, key),
            )
            return cur.rowcount == 1
