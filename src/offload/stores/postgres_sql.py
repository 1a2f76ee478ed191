"""The PostgreSQL engine's statements, one per verb (see ``offload.stores.postgres`` for how they are built and
why). ``{s}`` in a statement stands for the quoted schema name; parameters are psycopg's ``%(name)s``."""

from __future__ import annotations

_COLUMNS = (
    "id queue func task payload title state created_at enqueued_at run_at started_at ended_at attempts max_attempts "
    "retry timeout result error errors worker lease_until lease_token progress meta unique_key priority limit_key"
).split()
JOB_FIELDS = ["result_json" if c == "result" else c for c in _COLUMNS]
_PENDING = "('scheduled', 'queued', 'started')"
_DONE = "('finished', 'failed', 'canceled')"


def columns(alias: str) -> str:
    return ", ".join(f"{alias}.{c}" for c in _COLUMNS)


def _append_json(array: str, item: str) -> str:
    """SQL appending the JSON value ``item`` to the JSON array column ``array``, keeping its text as it is (a
    corrupted or foreign value that is not an array is replaced)."""
    return (
        f"(CASE WHEN json_typeof({array}) IS DISTINCT FROM 'array' THEN '[' || {item} || ']' "
        f"WHEN json_array_length({array}) = 0 THEN '[' || {item} || ']' "
        f"ELSE left(rtrim({array}::text), -1) || ',' || {item} || ']' END)::json"
    )


# A condition (an InitPlan, run once before any row is read) that makes the statement's own transaction commit
# without waiting for the WAL flush: SET LOCAL in the statement, so an autocommit call stays one round trip. For
# a worker's own bookkeeping (claim, settle) only. A server crash can forget the last few hundred milliseconds
# of those commits, which at-least-once delivery already covers: a forgotten claim leaves the job queued, a
# forgotten settle leaves it started until its lease expires; either way it runs again. Enqueues and the
# management verbs keep the server's setting: what they acknowledged is on disk.
_RELAXED_COMMIT = "(SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL"


def _notify(queue: str, state: str) -> str:
    """SQL (for RETURNING) waking the site's idle workers: the queue gained work, or the schedule changed."""
    return f"pg_notify(%(channel)s, CASE WHEN {state} = 'queued' THEN {queue} ELSE '' END)"


# Probes end in OFFSET 0, which keeps the planner from flattening them into a join that scans the whole site
# (LIMIT 1 would do that too, but would also make a scan-until-found plan look cheap). Updates name their rows
# by ctid alone: a state condition there would let the planner scan a partial index instead of fetching the
# rows, and is not needed, as the row version the probe saw is locked or, if changed since, has another ctid.

# Sequence numbers are drawn in batch order as the rows are read, so FIFO holds for inserted and replaced jobs.
# A plain INSERT plus an UPDATE of done jobs that reuse an id costs half of INSERT ... ON CONFLICT DO UPDATE.
_ENQUEUE = f"""
WITH input AS (
    SELECT e->>0 AS id, e->>1 AS queue, e->>2 AS func, e->>3 AS task, e->>4 AS payload, e->>5 AS title,
           e->>6 AS state, (e->>7)::float8 AS created_at, (e->>8)::float8 AS enqueued_at,
           (e->>9)::float8 AS run_at, (e->>10)::int4 AS attempts, (e->>11)::int4 AS max_attempts,
           (e->>12)::json AS retry, (e->>13)::float8 AS timeout, (e->>14)::json AS meta, e->>15 AS unique_key,
           (e->>16)::bool AS insert, (e->>17)::int4 AS priority, e->>18 AS limit_key, i.ord, nextval('{{seq}}') AS seq
    FROM jsonb_array_elements(%(jobs)s::jsonb) WITH ORDINALITY AS i(e, ord)
),
same_id AS (
    SELECT i.ord, x.* FROM input i CROSS JOIN LATERAL (
        SELECT j.state IN {_PENDING} AS pending, j.ctid AS tid, {columns("j")} FROM {{s}}.jobs j
        WHERE j.site = %(site)s AND j.id = i.id
        OFFSET 0
    ) x
),
same_key AS (
    SELECT i.ord, x.* FROM input i CROSS JOIN LATERAL (
        SELECT {columns("j")} FROM {{s}}.jobs j
        WHERE i.unique_key IS NOT NULL AND j.site = %(site)s AND j.unique_key = i.unique_key
          AND j.unique_key IS NOT NULL AND j.state IN {_PENDING}
        OFFSET 0
    ) x
),
free AS (
    SELECT i.* FROM input i
    WHERE i.insert
      AND NOT EXISTS (SELECT 1 FROM same_id s WHERE s.ord = i.ord AND s.pending)
      AND NOT EXISTS (SELECT 1 FROM same_key k WHERE k.ord = i.ord)
),
ins AS (
    INSERT INTO {{s}}.jobs AS j (seq, site, id, queue, func, task, payload, title, state, created_at, enqueued_at,
                                 run_at, attempts, max_attempts, retry, timeout, meta, unique_key, priority,
                                 limit_key)
    SELECT f.seq, %(site)s, f.id, f.queue, f.func, f.task, f.payload, f.title, f.state, f.created_at,
           f.enqueued_at, f.run_at, f.attempts, f.max_attempts, f.retry, f.timeout, f.meta, f.unique_key, f.priority,
           f.limit_key
    FROM free f
    WHERE NOT EXISTS (SELECT 1 FROM same_id s WHERE s.ord = f.ord)
    RETURNING j.id, j.queue, j.state
),
replaced AS (
    UPDATE {{s}}.jobs j SET
        seq = f.seq, queue = f.queue, func = f.func, task = f.task, payload = f.payload, title = f.title,
        state = f.state, created_at = f.created_at, enqueued_at = f.enqueued_at, run_at = f.run_at,
        started_at = NULL, ended_at = NULL, attempts = f.attempts, max_attempts = f.max_attempts,
        retry = f.retry, timeout = f.timeout, result = NULL, error = NULL, errors = '[]', worker = NULL,
        lease_until = NULL, lease_token = NULL, progress = NULL, meta = f.meta, unique_key = f.unique_key,
        priority = f.priority, limit_key = f.limit_key
    FROM free f JOIN same_id s ON s.ord = f.ord
    WHERE j.ctid = ANY(ARRAY(SELECT tid FROM same_id WHERE NOT pending)) AND j.ctid = s.tid
    RETURNING j.id, j.queue, j.state
),
added AS (
    SELECT id, queue, state FROM ins UNION ALL SELECT id, queue, state FROM replaced
)
SELECT s.ord, 1, s.id, json_build_array({columns("s")}) FROM same_id s WHERE s.pending
UNION ALL
SELECT k.ord, 2, k.id, json_build_array({columns("k")}) FROM same_key k
UNION ALL
SELECT NULL, NULL, a.id, NULL FROM added a
UNION ALL  -- one wake-up per queue, not per job; the row it returns is ignored
SELECT NULL, 0, NULL, NULL FROM (SELECT DISTINCT queue, state FROM added) w
WHERE {_notify("w.queue", "w.state")} IS NULL
"""

# One job whose id and unique key are both free (almost every single enqueue): a plain INSERT, half the server
# time of _ENQUEUE, short enough for psycopg to cache its parsed form (_ENQUEUE is parsed again on
# every call), and one parameter per column (parsing a JSON document costs more than binding them). ON CONFLICT
# DO NOTHING (any unique index: the id, or a pending job's unique key) returns no row; _ENQUEUE then finds the
# duplicate or replaces the done job holding the id. Numbers travel as text, so the parameter types (NULL or
# not, small or large), and with them psycopg's prepared statement, are the same for every job.
_INSERT_ONE = """
    INSERT INTO {s}.jobs AS j (site, id, queue, func, task, payload, title, state, created_at, enqueued_at,
                               run_at, attempts, max_attempts, retry, timeout, meta, unique_key, priority,
                               limit_key)"""
_ONE_ROW = """%(site)s, %(id)s, %(queue)s, %(func)s, %(task)s, %(payload)s, %(title)s, %(state)s,
            %(created_at)s::float8, %(enqueued_at)s::float8, %(run_at)s::float8, %(attempts)s::int4,
            %(max_attempts)s::int4, %(retry)s::json, %(timeout)s::float8, %(meta)s::json, %(unique_key)s,
            %(priority)s::int4, %(limit_key)s"""

_ENQUEUE_NEW = f"""
WITH ins AS ({_INSERT_ONE}
    VALUES ({_ONE_ROW})
    ON CONFLICT DO NOTHING
    RETURNING j.queue, j.state
)
SELECT {_notify("ins.queue", "ins.state")} FROM ins
"""

# Per queue, in the order given (paused ones left out): the head of the queue by priority, then its due scheduled
# jobs (claimed straight from scheduled: this statement cannot see rows its own CTE promotes), no more than the
# room its concurrency limit leaves (`cap`, from limit_room: see postgres_0003_limits.sql). Other due jobs of the
# site are promoted.
# A job free to start as far as its queue's per-key limit goes (one job per key and claim: key_free counts what
# is started, not what this claim takes).
_KEY_FREE = "(w.kcap IS NULL OR j.limit_key IS NULL OR {s}.key_free(%(site)s, j.queue, j.limit_key, w.kcap))"

_CLAIM = f"""
WITH wanted AS (
    SELECT q.name, q.pos, l.key_concurrency AS kcap,
           CASE WHEN l.concurrency IS NULL AND l.key_concurrency IS NULL THEN %(limit)s
                ELSE {{s}}.limit_room(%(site)s, q.name, coalesce(l.concurrency, 1073741824)) END AS cap
    FROM unnest(%(queues)s::text[]) WITH ORDINALITY AS q(name, pos)
    LEFT JOIN {{s}}.queue_limits l ON l.site = %(site)s AND l.queue = q.name
    WHERE NOT EXISTS (SELECT 1 FROM {{s}}.paused_queues p WHERE p.site = %(site)s AND p.queue = q.name)
),
candidates AS (
    SELECT w.pos, w.cap, w.kcap, c.limit_key AS lk, c.priority AS p, 0 AS part, c.enqueued_at AS k, c.seq, c.tid
    FROM wanted w CROSS JOIN LATERAL (
        SELECT j.ctid AS tid, j.seq, j.enqueued_at, j.priority, j.limit_key FROM {{s}}.jobs j
        WHERE j.queue = w.name AND j.state = 'queued' AND {_KEY_FREE}
        ORDER BY j.priority, j.enqueued_at, j.seq
        LIMIT least(%(limit)s, CASE WHEN w.kcap IS NULL OR w.cap = 0 THEN w.cap ELSE %(limit)s END)
        FOR UPDATE SKIP LOCKED
    ) c
    UNION ALL
    SELECT w.pos, w.cap, w.kcap, c.limit_key, c.priority, 1, 0, c.seq, c.tid
    FROM wanted w CROSS JOIN LATERAL (
        SELECT j.ctid AS tid, j.seq, j.priority, j.limit_key FROM {{s}}.jobs j
        WHERE j.site = %(site)s AND j.state = 'scheduled' AND j.run_at <= %(now)s AND j.queue = w.name
          AND {_KEY_FREE}
        ORDER BY j.priority, j.run_at, j.seq
        LIMIT least(%(limit)s, CASE WHEN w.kcap IS NULL OR w.cap = 0 THEN w.cap ELSE %(limit)s END)
        FOR UPDATE SKIP LOCKED
    ) c
),
chosen AS (
    SELECT y.tid, row_number() OVER (ORDER BY y.pos, y.p, y.part, y.k, y.seq) AS ord
    FROM (
        SELECT x.*, row_number() OVER (PARTITION BY x.pos ORDER BY x.p, x.part, x.k, x.seq) AS n
        FROM (
            SELECT c.*, row_number() OVER (PARTITION BY c.pos, c.lk ORDER BY c.p, c.part, c.k, c.seq) AS kn
            FROM candidates c
        ) x
        WHERE x.kcap IS NULL OR x.lk IS NULL OR x.kn = 1
    ) y
    WHERE y.n <= y.cap ORDER BY y.pos, y.p, y.part, y.k, y.seq LIMIT %(limit)s
),
promoted AS (
    UPDATE {{s}}.jobs j SET state = 'queued', enqueued_at = %(now)s
    WHERE j.ctid = ANY(ARRAY(
        SELECT d.ctid FROM {{s}}.jobs d
        WHERE d.site = %(site)s AND d.state = 'scheduled' AND d.run_at <= %(now)s
          AND d.ctid <> ALL(ARRAY(SELECT tid FROM chosen))
        ORDER BY d.run_at LIMIT %(promote)s
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING {_notify("j.queue", "j.state")}
),
claimed AS (
    UPDATE {{s}}.jobs j SET
        state = 'started', attempts = j.attempts + 1, lease_token = md5(random()::text || clock_timestamp()::text),
        lease_until = %(lease_until)s, worker = %(worker)s, started_at = %(now)s, ended_at = NULL,
        enqueued_at = CASE WHEN j.state = 'scheduled' THEN %(now)s ELSE j.enqueued_at END
    FROM chosen c
    WHERE j.ctid = ANY(ARRAY(SELECT tid FROM chosen)) AND j.ctid = c.tid
    RETURNING c.ord, {columns("j")}
)
SELECT * FROM claimed WHERE {_RELAXED_COMMIT} ORDER BY ord
"""

_EXTEND = """
WITH held AS (
    SELECT x.tid FROM jsonb_each_text(%(held)s::jsonb) AS h(id, token) CROSS JOIN LATERAL (
        SELECT j.ctid AS tid, j.state, j.lease_token FROM {s}.jobs j
        WHERE j.site = %(site)s AND j.id = h.id
        OFFSET 0
    ) x
    WHERE x.state = 'started' AND x.lease_token = h.token
)
UPDATE {s}.jobs j SET lease_until = %(until)s
WHERE j.ctid = ANY(ARRAY(SELECT tid FROM held))
RETURNING j.id
"""

_SETTLE = f"""
WITH o AS (
    SELECT e->>0 AS id, e->>1 AS token, e->>2 AS kind, e->>3 AS result, e->>4 AS error,
           (e->>5)::float8 AS retry_at, (e->>6)::float8 AS ended_at, e->>7 AS payload,
           (e->>8)::int4 AS max_attempts, i.ord
    FROM jsonb_array_elements(%(outcomes)s::jsonb) WITH ORDINALITY AS i(e, ord)
),
held AS (
    SELECT o.*, x.tid FROM o CROSS JOIN LATERAL (
        SELECT j.ctid AS tid, j.state, j.lease_token FROM {{s}}.jobs j
        WHERE j.site = %(site)s AND j.id = o.id
        OFFSET 0
    ) x
    WHERE x.state = 'started' AND x.lease_token = o.token
)
UPDATE {{s}}.jobs j SET
    state = CASE o.kind WHEN 'finish' THEN 'finished' WHEN 'fail' THEN 'failed'
                        WHEN 'retry' THEN 'scheduled' WHEN 'snooze' THEN 'scheduled' ELSE 'queued' END,
    result = CASE WHEN o.kind = 'finish' THEN o.result ELSE j.result END,
    error = CASE WHEN o.kind IN ('fail', 'retry') THEN o.error::json ELSE j.error END,
    errors = CASE WHEN o.kind IN ('fail', 'retry') THEN {_append_json("j.errors", "o.error")} ELSE j.errors END,
    run_at = CASE WHEN o.kind IN ('retry', 'snooze') THEN o.retry_at ELSE j.run_at END,
    payload = CASE WHEN o.kind = 'retry' AND o.payload IS NOT NULL THEN o.payload ELSE j.payload END,
    max_attempts = CASE WHEN o.kind IN ('fail', 'retry') AND o.max_attempts IS NOT NULL THEN o.max_attempts
                        ELSE j.max_attempts END,
    ended_at = CASE WHEN o.kind IN ('release', 'snooze') THEN j.ended_at ELSE o.ended_at END,
    attempts = CASE WHEN o.kind IN ('release', 'snooze') THEN greatest(j.attempts - 1, 0) ELSE j.attempts END,
    started_at = CASE WHEN o.kind IN ('release', 'snooze') THEN NULL ELSE j.started_at END,
    worker = CASE WHEN o.kind IN ('release', 'snooze') THEN NULL ELSE j.worker END,
    lease_token = NULL, lease_until = NULL
FROM held o
WHERE j.ctid = ANY(ARRAY(SELECT tid FROM held)) AND j.ctid = o.tid AND {_RELAXED_COMMIT}
RETURNING o.ord, CASE WHEN o.kind IN ('retry', 'release', 'snooze') THEN {_notify("j.queue", "j.state")} END,
    CASE WHEN EXISTS (SELECT 1 FROM {{s}}.queue_limits l WHERE l.site = %(site)s AND l.queue = j.queue)
    THEN pg_notify(%(channel)s, j.queue) END
"""

_ABANDONED = (
    "json_build_object('type', 'LeaseExpired', 'reason', 'abandoned', 'message', 'worker ' || "
    "coalesce(j.worker, 'None') || ' stopped renewing the lease (killed or lost); attempt ' || j.attempts, "
    "'traceback', NULL)::text"
)

_REQUEUE_EXPIRED = f"""
UPDATE {{s}}.jobs j SET
    state = CASE WHEN j.attempts < j.max_attempts THEN 'queued' ELSE 'failed' END,
    ended_at = CASE WHEN j.attempts < j.max_attempts THEN j.ended_at ELSE %(now)s END,
    error = ({_ABANDONED})::json, errors = {_append_json("j.errors", _ABANDONED)},
    lease_token = NULL, lease_until = NULL
WHERE j.ctid = ANY(ARRAY(
    SELECT e.ctid FROM {{s}}.jobs e
    WHERE e.site = %(site)s AND e.state = 'started' AND e.lease_until < %(now)s
    FOR UPDATE SKIP LOCKED
))
RETURNING {columns("j")}, {_notify("j.queue", "j.state")}
"""

_WORKER_LOST = (
    "json_build_object('type', 'WorkerLost', 'reason', 'abandoned', 'message', 'worker ' || "
    "coalesce(j.worker, 'None') || ' was declared dead (no heartbeat, or its process is gone); attempt ' || "
    "j.attempts, 'traceback', NULL)::text"
)

# The caller's heartbeat, then the dead workers' entries removed and their started jobs requeued (or failed).
_REAP_DEAD_WORKERS = f"""
WITH beat AS (
    UPDATE {{s}}.workers SET last_seen = %(now)s WHERE site = %(site)s AND id = %(me)s
), dead AS (
    DELETE FROM {{s}}.workers w
    WHERE w.site = %(site)s AND w.id <> %(me)s AND (w.last_seen < %(seen_before)s OR w.id = ANY(%(dead)s::text[]))
    RETURNING w.id
), gone AS (
    SELECT id FROM dead UNION SELECT d FROM unnest(%(dead)s::text[]) AS d WHERE d <> %(me)s
)
UPDATE {{s}}.jobs j SET
    state = CASE WHEN j.attempts < j.max_attempts THEN 'queued' ELSE 'failed' END,
    ended_at = CASE WHEN j.attempts < j.max_attempts THEN j.ended_at ELSE %(now)s END,
    error = ({_WORKER_LOST})::json, errors = {_append_json("j.errors", _WORKER_LOST)},
    lease_token = NULL, lease_until = NULL
WHERE j.ctid = ANY(ARRAY(
    SELECT e.ctid FROM {{s}}.jobs e
    WHERE e.site = %(site)s AND e.state = 'started' AND e.worker IN (SELECT id FROM gone)
    FOR UPDATE SKIP LOCKED
))
RETURNING {columns("j")}, {_notify("j.queue", "j.state")}
"""

_WORK_READY = """
SELECT EXISTS (
    SELECT 1 FROM unnest(%(queues)s::text[]) AS q(name)
    WHERE EXISTS (SELECT 1 FROM {s}.jobs j WHERE j.queue = q.name AND j.state = 'queued')
      -- with a per-key limit: one of its first 1,000 queued jobs has no key, or a key with room
      AND (NOT EXISTS (SELECT 1 FROM {s}.queue_limits k WHERE k.site = %(site)s AND k.queue = q.name
                       AND k.key_concurrency IS NOT NULL)
           OR EXISTS (SELECT 1 FROM (SELECT j.limit_key FROM {s}.jobs j WHERE j.queue = q.name AND j.state = 'queued'
                                     ORDER BY j.priority, j.enqueued_at, j.seq LIMIT 1000) c
                      WHERE c.limit_key IS NULL
                         OR (SELECT count(*) FROM {s}.jobs r WHERE r.queue = q.name AND r.state = 'started'
                             AND r.limit_key = c.limit_key)
                            < (SELECT k.key_concurrency FROM {s}.queue_limits k
                               WHERE k.site = %(site)s AND k.queue = q.name)))
      AND NOT EXISTS (SELECT 1 FROM {s}.paused_queues p WHERE p.site = %(site)s AND p.queue = q.name)
      AND NOT EXISTS (SELECT 1 FROM {s}.queue_limits l WHERE l.site = %(site)s AND l.queue = q.name
                      AND l.concurrency IS NOT NULL
                      AND l.concurrency <= (SELECT count(*) FROM {s}.jobs r WHERE r.site = %(site)s
                                            AND r.queue = q.name AND r.state = 'started'))
), (SELECT min(run_at) FROM {s}.jobs WHERE site = %(site)s AND state = 'scheduled')
"""

_PAUSE = """
INSERT INTO {s}.paused_queues (site, queue, paused_at) VALUES (%(site)s, %(queue)s, %(now)s)
ON CONFLICT (site, queue) DO NOTHING RETURNING 1
"""

# Resuming wakes the queue's idle workers, as new work would.
_RESUME = """
WITH gone AS (DELETE FROM {s}.paused_queues WHERE site = %(site)s AND queue = %(queue)s RETURNING queue)
SELECT pg_notify(%(channel)s, gone.queue) IS NULL FROM gone
"""

# Setting a limit (NULL: none; a row with no limit left limits nothing) wakes the queue's idle workers.
_SET_LIMIT = """
WITH up AS (
    INSERT INTO {s}.queue_limits (site, queue, concurrency) VALUES (%(site)s, %(queue)s, %(concurrency)s)
    ON CONFLICT (site, queue) DO UPDATE SET concurrency = excluded.concurrency RETURNING queue
)
SELECT pg_notify(%(channel)s, up.queue) IS NULL FROM up
"""

_SET_KEY_LIMIT = """
WITH up AS (
    INSERT INTO {s}.queue_limits (site, queue, key_concurrency) VALUES (%(site)s, %(queue)s, %(concurrency)s)
    ON CONFLICT (site, queue) DO UPDATE SET key_concurrency = excluded.key_concurrency RETURNING queue
)
SELECT pg_notify(%(channel)s, up.queue) IS NULL FROM up
"""

_KEY_LIMITS = """SELECT queue, key_concurrency FROM {s}.queue_limits
WHERE site = %(site)s AND key_concurrency IS NOT NULL ORDER BY queue"""

_LIMITS = ("SELECT queue, concurrency FROM {s}.queue_limits WHERE site = %(site)s AND concurrency IS NOT NULL "
           "ORDER BY queue")

_PAUSED = "SELECT queue, paused_at FROM {s}.paused_queues WHERE site = %(site)s ORDER BY queue"

_GET = f"SELECT {columns('j')} FROM {{s}}.jobs j WHERE j.site = %(site)s AND j.id = %(id)s"

_CANCEL = f"""
WITH changed AS (
    UPDATE {{s}}.jobs j SET state = 'canceled', ended_at = %(now)s, lease_token = NULL, lease_until = NULL
    WHERE j.site = %(site)s AND j.id = %(id)s AND j.state IN {_PENDING}
    RETURNING {columns("j")}
)
SELECT * FROM changed
UNION ALL
SELECT {columns("j")} FROM {{s}}.jobs j
WHERE j.site = %(site)s AND j.id = %(id)s AND NOT EXISTS (SELECT 1 FROM changed)
"""

_RETRY_NOW = f"""
WITH changed AS (
    UPDATE {{s}}.jobs j SET state = 'queued', attempts = CASE WHEN j.state = 'scheduled' THEN j.attempts ELSE 0 END,
        enqueued_at = %(now)s, run_at = NULL, ended_at = NULL
    WHERE j.site = %(site)s AND j.id = %(id)s AND j.state IN ('failed', 'canceled', 'scheduled')
    RETURNING {columns("j")}, {_notify("j.queue", "'queued'")}
)
SELECT {columns("changed")} FROM changed
UNION ALL
SELECT {columns("j")} FROM {{s}}.jobs j
WHERE j.site = %(site)s AND j.id = %(id)s AND NOT EXISTS (SELECT 1 FROM changed)
"""

_TO_FRONT = """
UPDATE {s}.jobs j SET priority = 0, enqueued_at = least(j.enqueued_at, coalesce((
    SELECT min(h.enqueued_at) - 0.000001 FROM {s}.jobs h
    WHERE h.site = j.site AND h.queue = j.queue AND h.state = 'queued' AND h.id <> j.id), j.enqueued_at))
WHERE j.site = %(site)s AND j.id = %(id)s AND j.state = 'queued'
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

# One statement (so it needs no transaction block, which a statement pooler refuses): the upsert's row lock
# serialises racing schedulers, and a loser (its slot not newer than the one recorded) inserts nothing. The
# recorded job id is the pending job holding the unique key when there is one, as enqueue would return it.
_ENQUEUE_PERIODIC = f"""
WITH slot AS (
    INSERT INTO {{s}}.schedule_runs AS r (site, name, last_slot, job_id)
    VALUES (%(site)s, %(name)s, %(slot)s::float8, coalesce((
        SELECT k.id FROM {{s}}.jobs k
        WHERE %(unique_key)s::text IS NOT NULL AND k.site = %(site)s AND k.unique_key = %(unique_key)s
          AND k.state IN {_PENDING}), %(id)s))
    ON CONFLICT (site, name) DO UPDATE SET last_slot = excluded.last_slot, job_id = excluded.job_id
        WHERE r.last_slot < excluded.last_slot
    RETURNING 1
),
ins AS ({_INSERT_ONE}
    SELECT {_ONE_ROW}
    WHERE EXISTS (SELECT 1 FROM slot)
    ON CONFLICT DO NOTHING
    RETURNING j.queue, j.state
)
SELECT EXISTS (SELECT 1 FROM slot), (SELECT {_notify("ins.queue", "ins.state")} FROM ins) IS NULL
"""

# Which database a connection reaches: its name and the cluster's system identifier (the same on a primary and
# its physical standbys); the postmaster's start time where pg_control_system() is not granted to the user.
IDENTITY = """
SELECT current_database()::text,
       CASE WHEN has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')
            THEN (SELECT 'system ' || system_identifier::text FROM pg_catalog.pg_control_system())
            ELSE 'started ' || extract(epoch FROM pg_catalog.pg_postmaster_start_time())::text END
"""


# Named statements; ``{s}`` stands for the quoted schema name.
STATEMENTS = {
    "enqueue": _ENQUEUE,
    "enqueue_new": _ENQUEUE_NEW,
    "claim": _CLAIM,
    "extend": _EXTEND,
    "settle": _SETTLE,
    "requeue_expired": _REQUEUE_EXPIRED,
    "reap_dead_workers": _REAP_DEAD_WORKERS,
    "work_ready": _WORK_READY,
    "pause": _PAUSE,
    "resume": _RESUME,
    "paused": _PAUSED,
    "set_limit": _SET_LIMIT,
    "set_key_limit": _SET_KEY_LIMIT,
    "limits": _LIMITS,
    "key_limits": _KEY_LIMITS,
    "get": _GET,
    "cancel": _CANCEL,
    "retry_now": _RETRY_NOW,
    "to_front": _TO_FRONT,
    "purge": _PURGE,
    "set_progress": _SET_PROGRESS,
    "enqueue_periodic": _ENQUEUE_PERIODIC,
    "identity": IDENTITY,
}
