"""offload.Snooze: what a job raises to run again later, and the outcome the worker makes of it."""

from __future__ import annotations

import pytest

import offload
from offload.jobs import Job
from offload.worker.executor import failure_report
from offload.worker.settle import outcome_for_report


@pytest.mark.parametrize("seconds", [-1, "5", None, True, float("nan"), float("inf"), 366 * 86400 + 1])
def test_snooze_refuses_a_bad_duration_naming_it(seconds: object) -> None:
    with pytest.raises(ValueError, match=r"invalid snooze .*: give the seconds to wait"):
        offload.Snooze(seconds)  # type: ignore[arg-type]


def test_a_snooze_becomes_a_snooze_outcome_not_a_failure() -> None:
    job = Job(id="j", queue="default", attempts=1, max_attempts=1, lease_token="t")
    report = failure_report(offload.Snooze(7))
    assert report["ok"] is False and report["snooze"] == 7.0
    outcome = outcome_for_report(job, report, 1000.0)
    assert (outcome.kind, outcome.retry_at, outcome.token, outcome.error) == ("snooze", 1007.0, "t", None)
