"""The pytest fixtures offload gives applications, used as an application would."""

from __future__ import annotations

import pytest

import offload
from offload import Offload
from offload.errors import SerializationError
from tests import jobfuncs


def test_offload_app_is_the_default_site(offload_app: Offload) -> None:
    job = offload.enqueue(jobfuncs.add, [1, 2])
    assert offload_app.get_job(job.id).state == "queued"


def test_run_jobs_runs_everything_queued(offload_app: Offload, run_jobs) -> None:  # type: ignore[no-untyped-def]
    a = offload.enqueue(jobfuncs.add, [1, 2], queue="maths")
    b = offload.enqueue(jobfuncs.fail, ["nope"], max_attempts=1)
    c = offload.enqueue(jobfuncs.progress, [3])
    done = {job.id: job for job in run_jobs()}
    assert done[a.id].state == "finished" and done[a.id].result == 3
    assert done[b.id].state == "failed" and done[b.id].error["message"] == "nope"
    assert done[c.id].progress == {"done": 3, "total": 3, "message": "steps"}
    assert run_jobs() == []


def test_sync_mode_runs_inline_through_the_codec(offload_sync: Offload) -> None:
    job = offload.enqueue(jobfuncs.add, [2, 3])
    assert job.state == "finished" and job.result == 5
    with pytest.raises(ValueError, match="raised in the job"):
        offload.enqueue(jobfuncs.fail, ["raised in the job"])
    with pytest.raises(SerializationError):
        offload.enqueue(jobfuncs.echo, [object()])
