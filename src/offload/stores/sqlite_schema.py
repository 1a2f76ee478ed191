"""SQLite schema migrations, applied in order; each entry is one version (a script of statements separated by
``;`` at line ends, or a list of statements). Never edit a released entry."""

MIGRATIONS: list[str | list[str]] = [
    # 1: jobs, workers, schedule runs, records.
    """
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    id TEXT NOT NULL,
    queue TEXT NOT NULL,
    func TEXT,
    task TEXT,
    payload TEXT NOT NULL,
    title TEXT,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    enqueued_at REAL,
    run_at REAL,
    started_at REAL,
    ended_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 1,
    retry TEXT,
    timeout REAL,
    result TEXT,
    error TEXT,
    errors TEXT NOT NULL DEFAULT '[]',
    worker TEXT,
    lease_until REAL,
    lease_token TEXT,
    progress TEXT,
    meta TEXT,
    unique_key TEXT
);
CREATE UNIQUE INDEX jobs_site_id ON jobs (site, id);
CREATE INDEX jobs_claim ON jobs (queue, enqueued_at, seq) WHERE state = 'queued';
CREATE INDEX jobs_due ON jobs (site, run_at) WHERE state = 'scheduled';
CREATE INDEX jobs_lease ON jobs (lease_until) WHERE state = 'started';
CREATE INDEX jobs_ended ON jobs (site, ended_at) WHERE state IN ('finished', 'failed', 'canceled');
CREATE UNIQUE INDEX jobs_unique_key ON jobs (site, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'queued', 'started');
CREATE INDEX jobs_list ON jobs (site, queue, state, created_at, seq);
CREATE INDEX jobs_created ON jobs (site, created_at, seq);
CREATE TABLE workers (
    site TEXT NOT NULL,
    id TEXT NOT NULL,
    last_seen REAL NOT NULL,
    info TEXT NOT NULL,
    PRIMARY KEY (site, id)
);
CREATE TABLE schedule_runs (
    site TEXT NOT NULL,
    name TEXT NOT NULL,
    last_slot REAL NOT NULL,
    job_id TEXT,
    PRIMARY KEY (site, name)
);
CREATE TABLE records (
    site TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (site, kind, key)
)
""",
]

# 2: counts per site, queue and state kept by triggers, so counting never reads the history.
MIGRATIONS.append([
    """CREATE TABLE job_counts (
        site TEXT NOT NULL,
        queue TEXT NOT NULL,
        state TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (site, queue, state)
    ) WITHOUT ROWID""",
    """INSERT INTO job_counts (site, queue, state, n)
        SELECT site, queue, state, count(*) FROM jobs GROUP BY site, queue, state""",
    """CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO job_counts (site, queue, state, n) VALUES (new.site, new.queue, new.state, 1)
            ON CONFLICT (site, queue, state) DO UPDATE SET n = n + 1;
    END""",
    """CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
        UPDATE job_counts SET n = n - 1 WHERE site = old.site AND queue = old.queue AND state = old.state;
    END""",
    """CREATE TRIGGER jobs_count_update AFTER UPDATE OF state, queue ON jobs
        WHEN old.state IS NOT new.state OR old.queue IS NOT new.queue BEGIN
        UPDATE job_counts SET n = n - 1 WHERE site = old.site AND queue = old.queue AND state = old.state;
        INSERT INTO job_counts (site, queue, state, n) VALUES (new.site, new.queue, new.state, 1)
            ON CONFLICT (site, queue, state) DO UPDATE SET n = n + 1;
    END""",
])

# 3: priorities within a queue (0 first; the claim index leads with it) and paused queues (issue 22).
MIGRATIONS.append([
    "ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
    "DROP INDEX jobs_claim",
    "CREATE INDEX jobs_claim ON jobs (queue, priority, enqueued_at, seq) WHERE state = 'queued'",
    """CREATE TABLE paused_queues (
        site TEXT NOT NULL,
        queue TEXT NOT NULL,
        paused_at REAL NOT NULL,
        PRIMARY KEY (site, queue)
    ) WITHOUT ROWID""",
])

# 4: concurrency limits (issue 22): claim starts a job of a listed queue only while fewer than `concurrency` of
# its jobs are started (job_counts), and one with a `limit_key` only while fewer than `key_concurrency` of the
# queue's jobs with that key are (jobs_keyed). NULL: no such limit.
MIGRATIONS.append([
    "ALTER TABLE jobs ADD COLUMN limit_key TEXT",
    "CREATE INDEX jobs_keyed ON jobs (queue, limit_key) WHERE state = 'started'",
    """CREATE TABLE queue_limits (
        site TEXT NOT NULL,
        queue TEXT NOT NULL,
        concurrency INTEGER,
        key_concurrency INTEGER,
        PRIMARY KEY (site, queue)
    ) WITHOUT ROWID""",
])
