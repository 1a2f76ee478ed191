-- Flow control (issue 22). Priorities within a queue: 0 (the default) first, 9 last; the claim index leads
-- with it (adding a column with a constant default rewrites no rows).
ALTER TABLE jobs ADD COLUMN priority integer NOT NULL DEFAULT 0;
DROP INDEX jobs_claim;
CREATE INDEX jobs_claim ON jobs (queue, priority, enqueued_at, seq) WHERE state = 'queued';

-- Paused queues (stored queue names, "<site>:<queue>"): claim takes nothing from them.
CREATE TABLE paused_queues (
    site text NOT NULL,
    queue text NOT NULL,
    paused_at float8 NOT NULL,
    PRIMARY KEY (site, queue)
);
