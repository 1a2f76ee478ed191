-- Concurrency limits (issue 22): claim starts a job of a listed queue (stored name, "<site>:<queue>") only while
-- fewer than `concurrency` of its jobs are started.
CREATE TABLE queue_limits (
    site text NOT NULL,
    queue text NOT NULL,
    concurrency integer NOT NULL,
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
