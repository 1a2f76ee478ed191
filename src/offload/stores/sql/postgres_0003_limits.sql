-- Concurrency limits (issue 22): claim starts a job of a listed queue (stored name, "<site>:<queue>") only while
-- fewer than `concurrency` of its jobs are started, and one with a `limit_key` only while fewer than
-- `key_concurrency` of the queue's jobs with that key are (NULL: no such limit).
ALTER TABLE jobs ADD COLUMN limit_key text;
CREATE INDEX jobs_keyed ON jobs (queue, limit_key) WHERE state = 'started';
CREATE TABLE queue_limits (
    site text NOT NULL,
    queue text NOT NULL,
    concurrency integer,
    key_concurrency integer,
    PRIMARY KEY (site, queue)
);

-- How many more jobs of a limited queue may start: called by the claim (autocommit, one statement) for each
-- limited queue it names. It first takes the site's transaction-level advisory lock, so claims of limited queues
-- take turns until their statement ends; being VOLATILE, its count then runs on a new snapshot, which sees the
-- jobs the claims before it started.
CREATE FUNCTION limit_room(p_site text, p_queue text, p_limit integer) RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('offload-limits:' || p_site, 22));
    RETURN greatest(0, p_limit - (SELECT count(*) FROM jobs j
                                  WHERE j.site = p_site AND j.queue = p_queue AND j.state = 'started'))::integer;
END
$$;

-- Whether a job of `p_queue` with key `p_key` may start under a per-key limit of `p_limit`: called by the claim
-- after limit_room (which holds the site's lock), on a new snapshot of its own.
CREATE FUNCTION key_free(p_site text, p_queue text, p_key text, p_limit integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $$
BEGIN
    RETURN (SELECT count(*) FROM jobs j WHERE j.queue = p_queue AND j.state = 'started' AND j.limit_key = p_key)
           < p_limit;
END
$$;
