"""Dead-worker detection in the fault battery (tests/faults/liveness.py), default settings, every engine.

Each test asserts the mechanism: the job came back through the liveness rule (a ``WorkerLost`` error) while its
30 s lease still ran, nothing lost, no duplicate but the paused worker's rejected one. The re-run delay bounds of
the issue (2 s on the same host, 10 s across hosts) are checked by bench/faults.py, whose report is the record;
here they are loosened (a loaded 2-core CI machine delays process starts and polls), still well inside the lease.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import liveness
from tests.faults.conftest import explain
from tests.faults.harness import ENGINES, Servers

pytestmark = pytest.mark.timeout(240)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_killed_worker_on_this_host_is_reaped_at_once(engine: str, servers: Servers, tmp_path: Path) -> None:
    result = liveness.dead_worker(engine, servers, tmp_path, other_host=False, mark=8.0)
    assert result["verdict"] == "pass", explain(result)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_killed_worker_on_another_host_is_reaped_once_silent(engine: str, servers: Servers,
                                                               tmp_path: Path) -> None:
    result = liveness.dead_worker(engine, servers, tmp_path, other_host=True, mark=20.0)
    assert result["verdict"] == "pass", explain(result)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_paused_worker_resumes_to_its_job_fenced_off(engine: str, servers: Servers, tmp_path: Path) -> None:
    result = liveness.paused_worker(engine, servers, tmp_path)
    assert result["verdict"] == "pass", explain(result)
