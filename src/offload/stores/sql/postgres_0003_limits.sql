-- Concurrency limits (issue 22): claim starts a job of a listed queue (stored name, "<site>:<queue>") only while
-- fewer than `concurrency` of its jobs are started.
CREATE TABLE queue_limits (
    site text NOT NULL,
    queue text NOT NULL,
    concurrency integer NOT NULL,
    PRIMARY KEY (site, queue)
);
