"""The benchmark report's comparison of offload with the best peer and the floor on each store."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def report() -> Any:
    sys.path.insert(0, str(BENCH))  # report imports machine, as it does when run.py runs it
    spec = importlib.util.spec_from_file_location("bench_report", BENCH / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_report"] = module
    spec.loader.exec_module(module)
    return module


def _cell(system: str, store: str, workload: str, **median: float) -> dict[str, Any]:
    return {"system": system, "store": store, "workload": workload, "median": median}


def test_the_best_peer_is_the_fastest_on_the_same_store_and_never_the_floor(report: Any) -> None:
    cells = [
        _cell("offload", "redis", "enqueue", jobs_per_s=5000.0, bulk_jobs_per_s=40000.0),
        _cell("huey", "redis", "enqueue", jobs_per_s=4000.0),
        _cell("rq", "redis", "enqueue", jobs_per_s=1000.0, bulk_jobs_per_s=4000.0),
        _cell("huey", "sqlite", "enqueue", jobs_per_s=9000.0),  # another store: not a rival on redis
        _cell("floor", "redis", "enqueue", jobs_per_s=10000.0, bulk_jobs_per_s=300000.0),
    ]
    rows = {r["metric"]: r for r in report.against_peers(cells)}
    single = rows["enqueue"]
    assert (single["best_peer"], single["best_peer_value"]) == ("huey", 4000.0)
    assert single["speed_vs_best_peer"] == pytest.approx(1.25)
    assert single["share_of_floor"] == pytest.approx(0.5)
    bulk = rows["bulk enqueue"]
    assert bulk["best_peer"] == "rq"
    assert bulk["speed_vs_best_peer"] == pytest.approx(10.0)
    assert bulk["share_of_floor"] == pytest.approx(40000 / 300000)


def test_for_latency_the_best_peer_is_the_lowest_and_speed_is_its_time_over_offloads(report: Any) -> None:
    cells = [
        _cell("offload", "postgres", "latency", p50_ms=3.0, p99_ms=9.0),
        _cell("procrastinate", "postgres", "latency", p50_ms=4.5, p99_ms=12.0),
        _cell("saq", "postgres", "latency", p50_ms=6.0, p99_ms=8.0),
    ]
    rows = {r["metric"]: r for r in report.against_peers(cells)}
    assert rows["latency p50"]["best_peer"] == "procrastinate"
    assert rows["latency p50"]["speed_vs_best_peer"] == pytest.approx(1.5)
    assert rows["latency p99"]["best_peer"] == "saq"
    assert rows["latency p99"]["speed_vs_best_peer"] == pytest.approx(8.0 / 9.0)
    assert rows["latency p99"]["floor"] is None


def test_a_store_without_peers_shows_offload_alone(report: Any) -> None:
    rows = report.against_peers([_cell("offload", "sqlite", "drain", jobs_per_s=12000.0)])
    assert rows == [{"store": "sqlite", "metric": "drain", "unit": "jobs/s", "offload": 12000.0, "best_peer": None,
                     "best_peer_value": None, "speed_vs_best_peer": None, "floor": None, "share_of_floor": None}]

