"""CKAN 2.12 with the offload plugin, end to end: enqueue from CKAN code, ``ckan jobs ...``, the ``job_*``
actions over HTTP, a job that updates a dataset, a failing job, on a PostgreSQL-only site and a Redis site.

Each test uses its own queues, so the tests of one site do not see each other's jobs.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.ckan.conftest import Site

# A CKAN command takes seconds to start (more on a busy machine): these tests are slow by nature.
pytestmark = pytest.mark.timeout(900)

JOBS = "ckan_testjobs"
TEST_JOB = "offload.contrib.ckan.jobs:test_job"
CREATED = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"


def _info_lines(stderr: str, logger: str = "ckan.lib.jobs") -> list[str]:
    return [line for line in stderr.splitlines() if re.search(rf"INFO  \[{re.escape(logger)}\]", line)]


def test_enqueue_from_ckan_code_then_list_show_cancel_clear_with_ckan_cli(site: Site) -> None:
    a, b, c = site.enqueue(
        {"fn": TEST_JOB, "args": ["a"], "title": "Job A", "queue": "cli-a"},
        {"fn": TEST_JOB, "args": ["b"], "queue": "cli-b", "via": "lib", "rq_kwargs": {"timeout": 5}},
        {"fn": TEST_JOB, "args": ["c"], "title": "Job C", "queue": "cli-b"},
    )
    prefix = "ckan:offload-test-"
    assert a["queue"] == "cli-a" and a["title"] == "Job A" and a["found"]
    assert a["origin"].startswith(prefix) and a["origin"].endswith(":cli-a")
    assert a["timeout"] == 60  # ckan.jobs.timeout, read at enqueue
    assert b["timeout"] == 5 and b["meta"] == {"title": None} and b["title"] is None
    assert re.fullmatch(CREATED, a["created"])

    # Read-only commands at once: each CKAN command takes seconds to start.
    with ThreadPoolExecutor(3) as pool:
        listing = pool.submit(site.ckan, "jobs", "list", "cli-a", "cli-b")
        showing = pool.submit(site.ckan, "jobs", "show", a["id"])
        missing_job = pool.submit(site.ckan, "jobs", "show", "no-such-job")
    listed, shown, missing = listing.result(), showing.result(), missing_job.result()
    assert listed.returncode == 0, listed.stderr
    assert listed.lines() == [  # CKAN's format; an untitled job's line ends with the empty title's space
        f'{a["created"]} {a["id"]} cli-a "Job A"',
        f'{b["created"]} {b["id"]} cli-b ',
        f'{c["created"]} {c["id"]} cli-b "Job C"',
    ]

    assert shown.returncode == 0, shown.stderr
    assert shown.lines() == [f"ID:      {a['id']}", 'Title:   "Job A"', f"Created: {a['created']}",
                             "Queue:   cli-a"]
    assert missing.returncode == 1
    assert 'There is no job with ID "no-such-job"' in missing.stderr

    cancelled = site.ckan("jobs", "cancel", a["id"])
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.lines() == [f"Cancelled job {a['id']}"]

    cleared = site.ckan("jobs", "clear", "cli-b")
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.lines() == ['Cleared queue(s) "cli-b"']

    empty = site.ckan("jobs", "list", "cli-a", "cli-b")
    assert empty.lines() == ["There are no pending jobs."]


def test_worker_runs_test_job_dataset_update_and_failure(site: Site) -> None:
    status, created = site.action("package_create", {"name": f"ds-{site.kind}", "title": "Before"})
    assert status == 200, created
    test = site.ckan("jobs", "test", "work")
    assert test.returncode == 0, test.stderr
    test_id = re.fullmatch(r'Added test job (\w+) to queue "work"', test.lines()[-1]).group(1)  # type: ignore[union-attr]
    retitle, fail = site.enqueue(
        {"fn": f"{JOBS}:retitle_dataset", "args": [f"ds-{site.kind}", "After"], "title": "Retitle",
         "queue": "work"},
        {"fn": f"{JOBS}:fail_job", "args": [site.kind], "queue": "work"},
    )
    (sleepy,) = site.enqueue({"fn": "time:sleep", "args": [60], "title": "Sleepy", "queue": "work",
                              "rq_kwargs": {"timeout": 2}})

    worker = site.ckan("jobs", "worker", "--burst", "work", timeout=180)
    assert worker.returncode == 0, worker.stderr

    # CKAN's lifecycle lines, from the worker's own process, and nothing else at INFO on ckan.lib.jobs.
    lines = _info_lines(worker.stderr)
    assert len(lines) == 2 + 2 * 4, "\n".join(lines)
    assert re.search(r'Worker \S+ \(PID \d+\) has started on queue\(s\) "work"', lines[0])
    assert f"starts job {test_id} (A test job) from queue \"work\"" in lines[1]
    assert f"has finished job {test_id} (A test job) from queue \"work\"" in lines[2]
    assert f"starts job {retitle['id']} (Retitle) from queue \"work\"" in lines[3]
    assert f"starts job {fail['id']} from queue \"work\"" in lines[5]
    assert re.search(r"Worker \S+ \(PID \d+\) has stopped", lines[-1])
    worker_pid = re.search(r"\(PID (\d+)\)", lines[0]).group(1)  # type: ignore[union-attr]
    assert all(f" pid={worker_pid} " in line for line in lines), "\n".join(lines)
    assert "('A test job',)" in worker.stdout

    error = [line for line in worker.stderr.splitlines() if "ERROR [ckan.lib.jobs]" in line]
    assert len(error) == 2 and all(f" pid={worker_pid} " in line for line in error)
    assert f"Job {fail['id']} on worker" in error[0] and f"raised an exception: JOB FAILURE {site.kind}" in error[0]
    # The job that overran its timeout was killed, and the worker went on.
    assert f"Job {sleepy['id']} on worker" in error[1] and "ran longer than its timeout of 2 s" in error[1]
    assert "Traceback (most recent call last)" in worker.stderr and "in fail_job" in worker.stderr

    # The dataset was updated by the job, through package_patch.
    status, shown = site.action("package_show", {"id": f"ds-{site.kind}"}, method="GET")
    assert status == 200 and shown["result"]["title"] == "After"

    # The failure and its traceback are kept: offload's actions and CLI show them.
    status, failed = site.action("offload_job_show", {"id": fail["id"]})
    assert status == 200, failed
    assert failed["result"]["state"] == "failed"
    assert failed["result"]["error"]["type"] == "ValueError"
    assert "in fail_job" in failed["result"]["error"]["traceback"]
    status, killed = site.action("offload_job_show", {"id": sleepy["id"]})
    assert status == 200 and killed["result"]["state"] == "failed"
    assert killed["result"]["error"]["reason"] == "timeout"
    status, done = site.action("offload_job_list", {"queues": ["work"], "state": ["finished"]})
    assert status == 200 and {j["id"] for j in done["result"]} == {test_id, retitle["id"]}
    shown_cli = site.ckan("offload", "show", fail["id"])
    assert shown_cli.returncode == 0, shown_cli.stderr
    assert "State:    failed" in shown_cli.stdout and f"ValueError: JOB FAILURE {site.kind}" in shown_cli.stdout
    assert "Traceback (most recent call last)" in shown_cli.stdout


def test_job_actions_as_sysadmin_and_as_normal_user(site: Site) -> None:
    one, two, three = site.enqueue(
        {"fn": TEST_JOB, "args": [1], "title": "One", "queue": "api-a"},
        {"fn": TEST_JOB, "args": [2], "queue": "api-a"},
        {"fn": TEST_JOB, "args": [3], "title": "Three", "queue": "api-b"},
    )
    for name, data in (("job_list", {}), ("job_show", {"id": one["id"]}), ("job_cancel", {"id": one["id"]}),
                       ("job_clear", {"queues": ["api-a"]}), ("offload_job_list", {}),
                       ("offload_job_show", {"id": one["id"]})):
        status, body = site.action(name, data, user="offload-user")
        assert status == 403 and body["success"] is False, (name, body)
        assert body["error"]["__type"] == "Authorization Error"

    status, body = site.action("job_list", {"queues": ["api-a", "api-b"]})
    assert status == 200 and body["success"] is True
    assert body["result"] == [
        {"id": one["id"], "title": "One", "created": one["created"], "queue": "api-a"},
        {"id": two["id"], "title": None, "created": two["created"], "queue": "api-a"},
        {"id": three["id"], "title": "Three", "created": three["created"], "queue": "api-b"},
    ]
    status, body = site.action("job_list", {"queues": ["api-a"], "ids_only": True, "limit": 1})
    assert status == 200 and body["result"] == [one["id"]]
    status, body = site.action("job_show", {"id": three["id"]})
    assert status == 200 and body["result"] == {"id": three["id"], "title": "Three", "created": three["created"],
                                                "queue": "api-b"}
    status, body = site.action("job_show", {"id": "nope"})
    assert status == 404 and body["error"]["__type"] == "Not Found Error"
    status, body = site.action("job_show", {})
    assert status == 409 and body["error"]["id"] == ["Missing value"]

    status, body = site.action("job_cancel", {"id": one["id"]})
    assert status == 200 and body["success"] is True
    status, body = site.action("job_cancel", {"id": one["id"]})
    assert status == 404
    status, body = site.action("job_clear", {"queues": ["api-a", "api-b"]})
    assert status == 200 and body["result"] == ["api-a", "api-b"]
    status, body = site.action("job_list", {"queues": ["api-a", "api-b"]})
    assert status == 200 and body["result"] == []
    status, body = site.action("offload_job_list", {"queues": ["api-a", "api-b"], "state": ["all"]})
    assert status == 200 and body["result"] == []  # cancelled and cleared jobs are removed, as in CKAN


def test_dashboard_is_mounted_for_sysadmins_only(site: Site) -> None:
    import urllib.error
    import urllib.request

    def get(user: str | None) -> tuple[int, str]:
        headers = {"Authorization": site.tokens[user]} if user else {}
        request = urllib.request.Request(f"{site.url}/ckan-admin/offload/", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    status, page = get("offload-admin")
    assert status == 200, page[-2000:]
    assert "work" in page or "Queues" in page or "queue" in page.lower()
    assert get("offload-user")[0] == 403
    assert get(None)[0] in (403, 401)


def test_module_surface_and_worker_override_points(site: Site) -> None:
    seen = site.side("checks", str(site.dir / "record.txt"))
    prefix = "ckan:offload-test-"
    assert seen["unprefixed"] == 'Queue name "chk" is not prefixed.'
    assert seen["roundtrip"] == "chk"
    assert seen["queue_name"].startswith(prefix) and seen["queue_name"].endswith(f"-{site.kind}:chk")
    assert seen["job_ids"] is True and seen["equal"] is True
    assert seen["job"]["args"][1] == "first" and seen["job"]["kwargs"] == {}
    assert seen["job"]["meta"] == {"title": None} and seen["job"]["timeout"] == 60
    assert seen["job"]["origin"] == seen["queue_name"] and seen["job"]["created_at_tz"] == "UTC"
    assert seen["queue_name"] in seen["all_queues"]
    assert all(name.startswith(prefix) for name in seen["all_queues"])
    assert seen["missing"] == '\'There is no job with ID "no-such-job".\''
    assert seen["after_delete"] is True and seen["emptied"] == 1 and seen["after_empty"] == []
    assert seen["after_queue_delete"] == []

    # execute_job overridden to call perform_job: the job ran and failed in the worker's own process.
    pid = seen["pid"]
    assert seen["inprocess_ran"] is True
    errors = [line for line in seen["inprocess_log"] if " ERROR " in line]
    assert len(errors) == 1 and errors[0].startswith(f"{pid} ERROR ckan.lib.jobs")
    assert "raised an exception: JOB FAILURE inprocess" in errors[0] and "in fail_job" in errors[0]

    # perform_job overridden: it ran in the job process; the lifecycle was logged by the worker's process.
    assert seen["recording_ran"] is True
    performed = [line for line in seen["recorded"] if line.startswith("perform_job")]
    assert [line.split("job=")[1] for line in performed] == [f"{i} ok=True" for i in seen["recording_ids"]]
    assert all(f"pid={pid} " not in line for line in performed)
    assert {"rec0", "rec1"} <= set(seen["recorded"])
    info = [line for line in seen["recording_log"] if " INFO " in line]
    assert len(info) == 2 + 2 * 2 and all(line.startswith(f"{pid} INFO ckan.lib.jobs") for line in info)
    assert seen["before_fork_calls"] == 2  # once per job run by the default execute_job (not the override)


def test_jobs_live_in_the_sites_store(site: Site) -> None:
    (job,) = site.enqueue({"fn": TEST_JOB, "args": ["where"], "queue": "where"})
    if site.kind == "postgresql":  # ckan.offload.store: a schema in the site's own database
        import psycopg

        from tests.conftest import POSTGRES_URL

        with psycopg.connect(f"{POSTGRES_URL.rsplit('/', 1)[0]}/{site.db}") as conn:
            tables = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'offload_jobs'")
            assert tables.fetchone()[0] > 0  # type: ignore[index]
    else:  # no ckan.offload.store: the jobs are in ckan.redis.url
        import redis

        from tests.ckan.conftest import REDIS_DB_URL

        keys = list(redis.Redis.from_url(REDIS_DB_URL).scan_iter(f"offload:{{{site.site_id}}}:*", count=1000))
        assert keys and any(job["id"].encode() in key for key in keys)


def test_rq_get_current_job_under_ckan_offload_worker(site: Site) -> None:
    """With the plugin on, ``rq.get_current_job()`` is the running job in offload's own worker too."""
    (job,) = site.enqueue({"fn": f"{JOBS}:current_rq_job", "queue": "rq-current", "title": "Who am I"})
    worker = site.ckan("offload", "worker", "--burst", "rq-current", timeout=180)
    assert worker.returncode == 0, worker.stderr
    status, body = site.action("offload_job_show", {"id": job["id"]})
    assert status == 200 and body["result"]["state"] == "finished", body
    assert body["result"]["result"] == {"id": job["id"], "meta": {"title": "Who am I"}}
