"""``/metrics`` in Prometheus text format 0.0.4, and the throughput figures behind the dashboard's chart."""

from __future__ import annotations

import html
import json
import re
import time

from offload.jobs import Job
from offload.web import metrics
from tests import jobfuncs
from tests.web.conftest import ADMIN, READ, Site

SAMPLE_RE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_]\w*="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)')


def parse(text: str) -> dict[str, float]:
    """Check the exposition grammar; return ``{'name{labels}': value}``. Every sample's family must have
    been introduced by HELP and TYPE lines, and no family may appear twice."""
    assert text.endswith("\n")
    samples: dict[str, float] = {}
    declared: list[str] = []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in declared, f"family {name} declared twice"
            declared.append(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name == declared[-1] and kind in ("gauge", "counter", "histogram")
        else:
            match = SAMPLE_RE.fullmatch(line)
            assert match, f"not a sample line: {line!r}"
            family = declared[-1]
            assert match.group(1) == family or match.group(1).startswith(family + "_"), line
            samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def test_metrics_after_a_real_worker_run(site: Site) -> None:
    for _ in range(2):
        site.offload.enqueue(jobfuncs.add, [1, 2])
    site.offload.enqueue(jobfuncs.fail, ["nope"], max_attempts=1)
    site.offload.enqueue(jobfuncs.noop, queue="later")
    site.run_worker()

    response = site.client.get("/metrics", headers={"Authorization": READ})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = parse(response.text)
    assert samples['offload_jobs{queue="default",state="finished"}'] == 2
    assert samples['offload_jobs{queue="default",state="failed"}'] == 1
    assert samples['offload_jobs{queue="later",state="queued"}'] == 1
    assert samples['offload_jobs{queue="later",state="started"}'] == 0
    assert samples['offload_jobs_ended_last_hour{queue="default",state="failed"}'] == 1
    assert samples['offload_jobs_ended_last_hour{queue="default",state="finished"}'] == 2
    buckets = [v for k, v in samples.items() if k.startswith('offload_job_duration_seconds_bucket{queue="default"')]
    assert len(buckets) == len(metrics.DURATION_BUCKETS) and buckets == sorted(buckets)
    assert samples['offload_job_duration_seconds_bucket{queue="default",le="+Inf"}'] == 3
    assert samples['offload_job_duration_seconds_count{queue="default"}'] == 3
    assert 0 <= samples['offload_job_duration_seconds_sum{queue="default"}'] < 60
    assert samples["offload_workers_alive"] == 0
    assert samples["offload_recent_scan_truncated"] == 0
    assert not any(k.startswith("offload_queue_paused{") for k in samples)
    site.offload.pause("later")
    samples = parse(site.client.get("/metrics", headers={"Authorization": READ}).text)
    assert samples['offload_queue_paused{queue="later"}'] == 1
    # From the metrics history the worker left in the store, and the queues' latency.
    assert samples['offload_queue_run_seconds_count{queue="default"}'] == 3
    assert samples['offload_queue_run_seconds_bucket{queue="default",le="+Inf"}'] == 3
    assert 0 <= samples['offload_queue_run_seconds_sum{queue="default"}'] < 60
    assert samples['offload_queue_latency_seconds{queue="later"}'] > 0
    assert samples['offload_queue_latency_seconds{queue="default"}'] == 0


def test_overview_chart_reads_the_history_by_range_and_queue(site: Site) -> None:
    from tests.web.test_dashboard import login

    for _ in range(3):
        site.offload.enqueue(jobfuncs.add, [1, 2], queue="maths")
    site.offload.enqueue(jobfuncs.fail, ["nope"], max_attempts=1)
    site.run_worker("maths", "default")
    login(site.client, ADMIN)
    for query, finished, failed, bars in (("", 3, 1, 60), ("?queue=maths", 3, 0, 60), ("?range=day", 3, 1, 24),
                                          ("?range=month&queue=default", 0, 1, 30)):
        page = site.client.get("/" + query).text
        assert f'id="finished-total">{finished}<' in page and f'id="failed-total">{failed}<' in page, query
        series = json.loads(html.unescape(re.search(r'data-series="([^"]*)"', page).group(1)))
        assert len(series) == bars, query
        busy = [row for row in series if row["finished"] or row["failed"]]
        assert busy and all(row["p95"] > 0 and row["wait"] >= 0 for row in busy), query


def test_label_values_are_escaped() -> None:
    out = metrics.Exposition()
    out.family("x_total", "counter", "help", [("", {"worker": 'a"b\\c\nd'}, 2.5)])
    assert out.text() == '# HELP x_total help\n# TYPE x_total counter\nx_total{worker="a\\"b\\\\c\\nd"} 2.5\n'
    assert parse(out.text()) == {'x_total{worker="a\\"b\\\\c\\nd"}': 2.5}


def _done(job_id: str, state: str, ended_at: float) -> Job:
    return Job(id=job_id, queue="default", state=state, created_at=ended_at - 1, started_at=ended_at - 0.5,
               ended_at=ended_at)


def test_throughput_counts_per_minute_over_the_last_hour() -> None:
    now = 1_700_000_030.0  # 30 s into a minute
    recent = metrics.RecentJobs([_done("a", "finished", now - 5), _done("b", "finished", now - 10),
                                 _done("c", "failed", now - 70), _done("d", "finished", now - 3590)],
                                truncated=False, now=now, window=3600.0)
    rows = metrics.throughput(recent)
    assert len(rows) == 60 and [r["t"] for r in rows] == sorted(r["t"] for r in rows)
    assert rows[-1]["t"] <= now < rows[-1]["t"] + 60
    assert rows[-1] == {"t": rows[-1]["t"], "finished": 2, "failed": 0}
    assert rows[-2]["failed"] == 1
    assert sum(r["finished"] for r in rows) == 3


def test_recent_scan_is_bounded_and_says_when_it_was_truncated(sqlite_site: Site) -> None:
    for _ in range(3):
        sqlite_site.offload.enqueue(jobfuncs.noop)
    sqlite_site.run_worker()
    full = metrics.recent_done_jobs(sqlite_site.offload, time.time())
    assert len(full.jobs) == 3 and not full.truncated
    cut = metrics.recent_done_jobs(sqlite_site.offload, time.time(), limit=2)
    assert len(cut.jobs) == 2 and cut.truncated
