"""From what happened to an attempt to the Outcome the store records, and the log line that says so."""

from __future__ import annotations

import logging
from typing import Any

from offload.jobs import Job, Outcome
from offload.retry import RetryPolicy, decide, next_payload, recorded_budget

log = logging.getLogger("offload")
#: ``extra=`` of the per-job lifecycle lines (started, finished) that a burst run leaves out unless asked
#: (``offload worker --burst`` without ``--log-level``): failures and retries are always logged.
PER_JOB = {"offload_per_job": True}


def outcome_for_report(job: Job, report: dict[str, Any], now: float) -> Outcome:
    """The outcome of an attempt that ran to the end in its child (returned or raised)."""
    token = job.lease_token or ""
    if report.get("ok"):
        if log.isEnabledFor(logging.INFO):
            log.info("Job %s finished in %.3f s", job.describe(), report.get("duration", 0.0), extra=PER_JOB)
        return Outcome(job.id, token, "finish", result_json=report["result"], ended_at=now)
    if report.get("snooze") is not None:
        seconds = float(report["snooze"])
        log.info("Job %s snoozed for %g s", job.describe(), seconds)
        return Outcome(job.id, token, "snooze", retry_at=now + seconds, ended_at=now)
    return failed(job, dict(report["error"]), now)


def outcome_for(job: Job, report: dict[str, Any], now: float) -> Outcome:
    """The outcome of an attempt from a ``JobRunner`` report: run to its end (``outcome_for_report``), or
    ``killed`` for a ``timeout``, a ``crash`` or a ``shutdown`` (given back to its queue, attempt not counted)."""
    killed = report.get("killed")
    if killed == "timeout":
        return outcome_for_timeout(job, now, str(report.get("cause")), float(report.get("grace") or 0.0),
                                   report.get("limit"))
    if killed == "crash":
        return outcome_for_crash(job, now, str(report.get("cause")))
    if killed == "shutdown":
        return Outcome(job.id, job.lease_token or "", "release")
    return outcome_for_report(job, report, now)


def outcome_for_timeout(job: Job, now: float, cause: str, grace: float = 0.0, limit: float | None = None
                        ) -> Outcome:
    """A job killed at its time limit (``grace`` 0: no soft timeout) or ``grace`` seconds after it, when it had not
    stopped after ``JobTimeout`` was raised in it. ``limit``: the time limit, if not the job's own ``timeout``."""
    limit = job.timeout if limit is None else limit
    message = f"the job ran longer than its timeout of {limit:g} s" if limit is not None else "the job overran"
    if grace > 0:
        message += f" and was still running {grace:g} s after JobTimeout was raised in it"
    message += "; its process group was killed"
    error = {"type": "JobTimeout", "message": message, "traceback": None, "reason": "timeout", "timeout": "hard"}
    return failed(job, error, now)


def outcome_for_crash(job: Job, now: float, cause: str) -> Outcome:
    error = {
        "type": "ExecutorDied",
        "message": f"the executor process running this job {cause}",
        "traceback": None,
        "reason": "crash",
    }
    return failed(job, error, now)


def outcome_for_lost_result(job: Job, now: float) -> Outcome:
    """A job that ran to its end in an executor that died before reporting it: the attempt counts (so a job can
    never run more often than its budget allows), and it runs again at once if attempts are left."""
    error = {
        "type": "ResultLost",
        "message": "the job ran, but its executor process died before reporting the result",
        "traceback": None,
        "reason": "crash",
        "attempt": job.attempts,
        "at": now,
    }
    if job.attempts < job.max_attempts:
        log.warning("Job %s ran but its result was lost with its executor; will run again", job.describe())
        return Outcome(job.id, job.lease_token or "", "retry", error=error, retry_at=now, ended_at=now)
    log.error("Job %s ran but its result was lost with its executor; no attempts left", job.describe())
    return Outcome(job.id, job.lease_token or "", "fail", error=error, ended_at=now)


def outcome_for_corrupt(job: Job, problem: str, now: float) -> Outcome:
    """A claimed job whose stored record is damaged or foreign: failed for good, never run."""
    error = {
        "type": "CorruptJob",
        "message": f"the stored job record cannot be run ({problem}); it was not run",
        "traceback": None,
        "reason": "corrupt",
        "retryable": False,
        "attempt": job.attempts,
        "at": now,
    }
    log.error("Job %s was not run: its stored record is corrupt or foreign: %s", job.describe(), problem)
    return Outcome(job.id, job.lease_token or "", "fail", error=error, ended_at=now)


def failed(job: Job, error: dict[str, Any], now: float) -> Outcome:
    """Retry or fail for good, as the job's budget and policy decide; logs the failure at ERROR."""
    countdown = error.pop("countdown", None)
    max_retries = error.pop("max_retries", None)
    payload = next_payload(job.payload, error.pop("retry_with", None))
    retryable = error.get("retryable", True) is not False
    decision = decide(job.attempts, job.max_attempts, RetryPolicy.from_dict(job.retry), now,
                      retryable=retryable, countdown=countdown, max_retries=max_retries)
    budget = recorded_budget(job.attempts, job.max_attempts, max_retries)
    error["attempt"] = job.attempts
    error["at"] = now
    summary = f"{error['type']}: {error['message']}" if error.get("message") else error["type"]
    if decision.retry_at is not None:
        log.warning("Job %s failed (%s); will retry: %s", job.describe(), summary, decision.reason)
        return Outcome(job.id, job.lease_token or "", "retry", error=error, retry_at=decision.retry_at,
                       ended_at=now, payload=payload, max_attempts=budget)
    trace = error.get("traceback")
    log.error("Job %s failed: %s%s", job.describe(), summary, f"\n{trace.rstrip()}" if trace else "")
    return Outcome(job.id, job.lease_token or "", "fail", error=error, ended_at=now, max_attempts=budget)
