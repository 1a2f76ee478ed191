"""SQLite schema migrations, applied in order; each entry is one version. Never edit a released entry."""

MIGRATIONS: list[str] = [
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
