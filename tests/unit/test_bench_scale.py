"""The scale benchmark's figures: parsing ``ss`` and Redis ``INFO``, the PostgreSQL server's CPU from /proc, the
gaps between jobs and their percentiles, the report's choice of the best peer, and that the kernel's segment
count is one per request/response exchange against real Redis and PostgreSQL servers."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> Any:
    for path in (BENCH, BENCH / "peers"):  # the modules import each other by top-level name, as in their venvs
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def stats() -> Any:
    return _load("_serverstats")


@pytest.fixture(scope="module")
def scale() -> Any:
    return _load("_scale")


@pytest.fixture(scope="module")
def report() -> Any:
    return _load("scale_report")


# Captured from ``ss -tinHe state established '( sport = :5432 or dport = :5432 )'`` (ss 6.1), shortened.
SS_OUTPUT = """\
0      0      127.0.0.1:5432  127.0.0.1:40562 timer:(keepalive,119min,0) uid:101 ino:260027 sk:1007 cgroup:/ <->
\t ts sack bbr wscale:10,10 rto:212 rtt:8.524/14.9 ato:40 mss:32768 bytes_received:3283 segs_out:50 segs_in:55 \
data_segs_out:49 data_segs_in:49 bbr:(bw:52428796872bps,mrtt:0.005) send 553565462bps lastsnd:50828
0      0      127.0.0.1:40562 127.0.0.1:5432  timer:(keepalive,119min,0) ino:259826 sk:1009 cgroup:/ <->
\t ts sack bbr wscale:10,10 rto:204 rtt:0.294/0.265 segs_out:52 segs_in:50 data_segs_out:49 data_segs_in:48
0      0      127.0.0.1:5432  127.0.0.1:48810 timer:(keepalive,119min,0) uid:101 ino:261120 sk:1008 cgroup:/ <->
\t ts sack cubic wscale:7,7 rto:204 rtt:0.02/0.01 segs_out:1 segs_in:2
0      0      [::1]:6379  [::1]:51234 ino:1 sk:1 <->
\t ts sack cubic data_segs_in:7
"""


def test_ss_output_gives_each_socket_its_endpoints_inode_and_counters(stats: Any) -> None:
    sockets = stats.parse_ss(SS_OUTPUT)
    assert [(s.local, s.peer, s.inode) for s in sockets] == [
        (("127.0.0.1", 5432), ("127.0.0.1", 40562), 260027),
        (("127.0.0.1", 40562), ("127.0.0.1", 5432), 259826),
        (("127.0.0.1", 5432), ("127.0.0.1", 48810), 261120),
        (("::1", 6379), ("::1", 51234), 1),
    ]
    assert [(s.data_segs_in, s.data_segs_out) for s in sockets] == [(49, 49), (48, 49), (0, 0), (7, 0)]


def test_only_the_server_end_of_the_workers_connections_counts(stats: Any) -> None:
    sockets = stats.parse_ss(SS_OUTPUT)
    # The client end of 40562 (inode 259826) belongs to a worker; 48810's client end is not listed as one.
    assert stats.server_side_segments(sockets, 5432, {259826}) == {"127.0.0.1:40562": 49}
    assert stats.server_side_segments(sockets, 5432, set()) == {}
    assert stats.server_side_segments(sockets, 5432, {260027}) == {}  # a server-side inode is no client


def test_segments_between_snapshots_count_new_connections_whole_and_report_lost_ones(stats: Any) -> None:
    before = {"a:1": 10, "a:2": 5, "a:3": 7}
    after = {"a:1": 30, "a:2": 5, "a:4": 4}  # a:3 closed, a:4 opened in between
    assert stats.segments_between(before, after) == {"segments": 24, "connections": 3, "lost": 1}


INFO_OUTPUT = ("# Server\r\nredis_version:7.0.15\r\nprocess_id:2253\r\n\r\n# Stats\r\ntotal_commands_processed:1200\r\n"
               "total_reads_processed:800\r\n\r\n# CPU\r\nused_cpu_sys:4.022905\r\nused_cpu_user:13.138237\r\n"
               "used_cpu_sys_children:0.000000\r\n")


def test_redis_info_gives_the_servers_cpu_and_request_counters(stats: Any) -> None:
    info = stats.parse_info(INFO_OUTPUT)
    assert info["redis_version"] == "7.0.15" and info["process_id"] == "2253"
    counters = stats.redis_counters(info)
    assert counters["cpu_s"] == pytest.approx(17.161142)
    assert (counters["reads"], counters["commands"]) == (800.0, 1200.0)


def test_proc_stat_and_listener_lines_parse_whatever_the_process_name(stats: Any) -> None:
    line = "2233 (postgres: bench (x) idle) S 1 2233 2233 0 -1 4194560 9 0 0 0 120 35 400 80 20 0 1 0 12 0 0\n"
    assert stats.parse_stat(line) == {"ppid": 1, "utime": 120, "stime": 35, "cutime": 400, "cstime": 80}
    listen = 'LISTEN 0 244 127.0.0.1:5432 0.0.0.0:* users:(("postgres",pid=2233,fd=5))\n'
    assert stats.parse_listener_pid(listen) == 2233
    assert stats.parse_listener_pid("") is None


def _rec(slot: str, start: int, end: int) -> tuple[str, int, int, int, int]:
    return (slot, 100, 1, start, end)


def test_gaps_are_per_worker_in_start_order_and_only_for_jobs_ending_in_the_window(scale: Any) -> None:
    records = [
        _rec("0", 100, 110), _rec("1", 105, 106), _rec("0", 150, 160), _rec("1", 130, 131),
        _rec("0", 120, 125), _rec("1", 200, 210),
    ]
    # slot 0 in start order: 100-110, 120-125, 150-160 -> gaps 10, 25; slot 1: 105-106, 130-131, 200-210 -> 24, 69
    gaps, overlaps = scale.gaps_ns(records, 0, 1000)
    assert sorted(gaps) == [10, 24, 25, 69] and overlaps == 0
    gaps, _ = scale.gaps_ns(records, 108, 126)  # only jobs ending at 110 and 125 (slot 0)
    assert sorted(gaps) == [10, 25]
    _, overlaps = scale.gaps_ns([_rec("0", 100, 120), _rec("0", 110, 130)], 0, 1000)
    assert overlaps == 1  # two jobs at once in one slot: not a one-slot worker
    assert scale.ended_between(records, 106, 125) == 3


def test_percentiles_interpolate_between_ranks(scale: Any) -> None:
    values = list(range(1, 101))
    assert scale.percentile(values, 0.5) == pytest.approx(50.5)
    assert scale.percentile(values, 0.99) == pytest.approx(99.01)
    assert scale.percentile([7.0], 0.99) == 7.0
    assert scale.percentile([3, 1, 2], 0.0) == 1


def test_the_record_reader_counts_whole_lines_as_the_file_grows(scale: Any, tmp_path: Path) -> None:
    path = tmp_path / "records.txt"
    path.write_bytes(b"0 1 1 10 11\n1 2 1 12 1")
    reader = scale.RecordReader(str(path))
    assert reader.poll() == 1 and reader.slots == {"0"}
    with open(path, "ab") as f:
        f.write(b"3\n2 3 1 14 15\n")
    assert reader.poll() == 3 and reader.slots == {"0", "1", "2"}
    assert [r[0] for r in scale.parse_records(path.read_text())] == ["0", "1", "2"]


def test_per_job_figures_divide_by_the_jobs_that_ended_between_the_readings(scale: Any) -> None:
    records = [_rec("0", t - 1, t) for t in range(100, 200)]  # 100 jobs ending at 100..199
    before = {"cpu_t": 100, "cpu_s": 1.0, "reads": 10.0, "ss_t": 150, "segments": {"c:1": 5}}
    after = {"cpu_t": 149, "cpu_s": 1.005, "reads": 60.0, "ss_t": 199, "segments": {"c:1": 105}}
    figures = scale.per_job(before, after, records)
    assert figures["cpu_per_job_us"] == pytest.approx(100.0)  # 5 ms over 50 jobs
    assert figures["reads_per_job"] == pytest.approx(1.0)
    assert figures["segments_per_job"] == pytest.approx(2.0)  # 100 segments over 50 jobs
    assert scale.per_job({}, after, records) == {}  # SQLite: no server


def _row(system: str, store: str, workers: int, **median: float) -> dict[str, Any]:
    return {"system": system, "store": store, "workers": workers, "median": median}


def test_the_best_peer_is_the_lowest_server_cpu_on_the_same_store_and_worker_count(report: Any) -> None:
    rows = [
        _row("offload", "redis", 16, cpu_per_job_us=20.0), _row("huey", "redis", 16, cpu_per_job_us=45.0),
        _row("celery", "redis", 16, cpu_per_job_us=100.0), _row("huey", "redis", 1, cpu_per_job_us=10.0),
        _row("saq", "postgres", 16, cpu_per_job_us=5.0), _row("offload", "sqlite", 16),
    ]
    (found,) = report.against_best_peer(rows)
    assert (found["store"], found["workers"], found["best_peer"]) == ("redis", 16, "huey")
    assert found["share"] == pytest.approx(20 / 45)
    # offload as at another commit (--offload-ref) is no peer; it gets a before/after of its own.
    rows.append(_row("offload@main", "redis", 16, cpu_per_job_us=10.0, jobs_per_s=400.0))
    rows[0]["median"]["jobs_per_s"] = 500.0
    assert report.against_best_peer(rows)[0]["best_peer"] == "huey"
    (change,) = report.before_after(rows)
    assert (change["before"], change["workers"]) == ("offload@main", 16)
    assert change["ratio"] == {"jobs_per_s": pytest.approx(1.25), "cpu_per_job_us": pytest.approx(2.0)}


def test_round_trips_come_from_redis_own_count_there_and_from_the_kernel_elsewhere(report: Any) -> None:
    assert report.round_trips({"reads_per_job": 26.0, "segments_per_job": 15.0}, "redis") == 26.0
    assert report.round_trips({"segments_per_job": 8.0}, "postgres") == 8.0
    assert report.round_trips({}, "sqlite") is None
    runs = [{"ok": True, "n": 100, "jobs_per_s": 50.0, "steady": {"jobs_per_s": 60.0, "cpu_per_job_us": 250.0,
                                                                  "reads_per_job": 3.0, "segments_per_job": 3.0}},
            {"ok": True, "n": 100, "jobs_per_s": 70.0, "steady": {"jobs_per_s": 80.0, "cpu_per_job_us": 150.0}},
            {"ok": False, "error": "worker exited"}]
    (row,) = report.summarize({"celery/redis/4": runs})
    assert (row["workers"], row["ok_runs"], row["errors"]) == (4, 2, ["worker exited"])
    assert row["median"]["jobs_per_s"] == 70.0 and row["median"]["jobs_per_store_core"] == pytest.approx(5000.0)


# -- against real servers ---------------------------------------------------------------------------------------
needs_ss = pytest.mark.skipif(shutil.which("ss") is None or not Path("/proc/self/fd").exists(),
                              reason="needs ss (iproute2) and /proc")


def _my_segments(stats: Any, port: int) -> int:
    """Data segments the server received from this process's connections (the workers' count, for one process)."""
    mine = stats.socket_inodes({__import__("os").getpid()})
    text = subprocess.run(["ss", "-tinHe", "state", "established", f"( sport = :{port} or dport = :{port} )"],
                          capture_output=True, text=True, check=True).stdout
    return sum(stats.server_side_segments(stats.parse_ss(text), port, mine).values())


@needs_ss
def test_the_kernel_counts_one_segment_per_redis_request_and_one_per_pipeline(stats: Any, tmp_path: Path) -> None:
    from tests.conftest import engine_url

    url = engine_url("redis", tmp_path).split("?")[0]
    import redis

    client = redis.Redis.from_url(url)
    client.ping()  # connected; what follows is counted
    port = client.connection_pool.connection_kwargs.get("port", 6379)
    before = _my_segments(stats, port)
    for _ in range(10):
        client.ping()
    after_singles = _my_segments(stats, port)
    pipe = client.pipeline(transaction=True)
    for _ in range(10):
        pipe.ping()
    pipe.execute()
    after_pipeline = _my_segments(stats, port)
    client.close()
    assert after_singles - before == 10
    assert after_pipeline - after_singles == 1  # MULTI, 10 commands and EXEC written at once: one exchange


@needs_ss
def test_the_kernel_counts_one_segment_per_postgres_exchange(
        stats: Any, tmp_path: Path) -> None:
    from tests.conftest import POSTGRES_URL, engine_url

    engine_url("postgresql", tmp_path)  # skips (or fails in CI) without the server
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute("SELECT 1")  # psycopg's first statement after connecting may add one: not counted
        port = int(conn.info.port)
        before = _my_segments(stats, port)
        for i in range(10):
            # prepare=False: psycopg prepares a statement on its 6th run (a Parse exchange, then the execution),
            # which the count shows as the two exchanges it is.
            conn.execute("SELECT %s", (i,), prepare=False)
        autocommit = _my_segments(stats, port)
        conn.autocommit = False
        conn.execute("SELECT 1")  # psycopg waits for its BEGIN before sending the statement
        conn.commit()
        transaction = _my_segments(stats, port)
    assert autocommit - before == 10
    assert transaction - autocommit == 3  # BEGIN, SELECT, COMMIT: three exchanges


def test_the_postgres_servers_cpu_includes_backends_that_exited(stats: Any, tmp_path: Path) -> None:
    from tests.conftest import POSTGRES_URL, engine_url

    engine_url("postgresql", tmp_path)
    import psycopg

    from tests.waiting import wait_until

    port = psycopg.conninfo.conninfo_to_dict(POSTGRES_URL).get("port") or 5432
    postmaster = stats.listener_pid(int(port))
    before = stats.tree_cpu_seconds(postmaster)
    conn = psycopg.connect(POSTGRES_URL, autocommit=True)
    backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    conn.execute("SELECT count(*) FROM generate_series(1, 3000000)")
    used = int(Path(f"/proc/{backend}/schedstat").read_text().split()[0]) / 1e9
    conn.close()
    wait_until(lambda: not Path(f"/proc/{backend}").exists(), what=f"backend {backend} gone")
    assert used > 0.05
    # The backend is gone: its CPU is in the postmaster's cutime/cstime (10 ms ticks), not lost.
    assert stats.tree_cpu_seconds(postmaster) - before >= used - 0.02


def test_a_small_scale_cell_runs_end_to_end_on_sqlite(tmp_path: Path) -> None:
    """The real workload, small: offload's adapter, 2 worker processes, 300 jobs (a few seconds)."""
    import json
    import os

    env = dict(os.environ, PYTHONPATH=str(BENCH / "peers"))
    proc = subprocess.run([sys.executable, str(BENCH / "peers" / "offload_bench.py"), "scale", "--store", "sqlite",
                           "--n", "300", "--workers", "2", "--workdir", str(tmp_path), "--budget", "60"],
                          capture_output=True, text=True, env=env, timeout=90)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ok"], result.get("error")
    assert (result["executed"], result["done"]) == (300, 300)
    assert result["drain"] == {}  # SQLite: no server to read
    # Each line names the worker it ran under; one fast worker may drain 300 jobs before the other is up.
    slots = {line.split()[0] for line in (tmp_path / "records.txt").read_text().splitlines()}
    assert slots <= {"0", "1"} and len(slots) == result["workers_started"] >= 1


@needs_ss
@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="needs redis-cli")
def test_a_small_scale_cell_reads_its_private_redis(tmp_path: Path, private_redis: Any) -> None:
    """The same on a private Redis (the cell flushes its database): the server's CPU and the workers' requests
    are read, and the kernel's count agrees with Redis's own for connections that live through the drain."""
    import json
    import os

    env = dict(os.environ, PYTHONPATH=str(BENCH / "peers"), BENCH_REDIS_URL=private_redis.url)
    proc = subprocess.run([sys.executable, str(BENCH / "peers" / "offload_bench.py"), "scale", "--store", "redis",
                           "--n", "300", "--workers", "2", "--workdir", str(tmp_path), "--budget", "60"],
                          capture_output=True, text=True, env=env, timeout=90)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ok"], result.get("error")
    drain = result["drain"]
    assert result["server"]["server_cores_before"] <= 0.05  # it waited for an idle server before measuring
    assert drain["cpu_s"] > 0 and drain["connections"] >= 2 and drain["connections_lost"] == 0
    assert drain["segments"] > 0
    # Redis's reads also count the probe's own INFO calls (one per snapshot after the first) and, over the whole
    # drain, the driver's final "anything left?" checks: a few more than the workers' segments, never fewer.
    reads = round(drain["reads_per_job"] * 300)
    assert drain["segments"] <= reads <= drain["segments"] + 15
