"""How many jobs the supervisor hands an executor ahead of what it runs (prefetch), for short jobs."""

from __future__ import annotations

from types import SimpleNamespace

from offload import Offload
from offload.worker.supervisor import PREFETCH_MAX, Supervisor, WorkerOptions


def _capacity(threads: int, avg_duration: float) -> int:
    supervisor = Supervisor(Offload(store="memory://", site_id="prefetch"), WorkerOptions(queues=["default"]))
    supervisor.avg_duration = avg_duration
    child = SimpleNamespace(threads=threads, retiring=False, dead=False, isolating=False, ready=True, assigned={})
    return supervisor._capacity(child)  # type: ignore[arg-type]


def test_a_threaded_executor_holds_what_all_its_threads_get_through_in_the_window() -> None:
    # Regression: the window was counted for one thread, so 16 threads running 10 ms jobs held 5 spare jobs
    # (3 ms of work for them) and went idle between claims: 2,000 jobs/s instead of ~3,000 on that workload.
    assert _capacity(threads=1, avg_duration=0.01) == 1 + 5
    assert _capacity(threads=16, avg_duration=0.01) == 16 + min(PREFETCH_MAX, 80)
    assert _capacity(threads=4, avg_duration=0.025) == 4 + 8


def test_no_prefetch_for_jobs_longer_than_the_window() -> None:
    assert _capacity(threads=1, avg_duration=0.2) == 1
    assert _capacity(threads=16, avg_duration=0.06) == 16
