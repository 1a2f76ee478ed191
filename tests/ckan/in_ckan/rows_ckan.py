"""One test per row of the audit table in docs/ckan.md ("The RQ surface CKAN code calls"): each calls what CKAN or
the extension calls, as it calls it, and checks RQ 2.x's behaviour (or the documented difference).

Run inside the CKAN venv by tests/ckan/test_audit_rows.py, with CKAN's pytest plugin and offload's
(``-p offload.contrib.ckan.pytest_plugin``); job functions live in this module, which the forked job processes
import by name (they inherit the test process's ``sys.path``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time

import ckan.lib.jobs as jobs
import ckan.plugins.toolkit as tk
import pytest
import rq
import rq.exceptions
import rq.job
import rq.timeouts
from ckan.tests import helpers

pytestmark = pytest.mark.usefixtures("clean_queues")


def add(a: int, b: int) -> int:
    return a + b


def fail(message: str) -> None:
    raise ValueError(message)


def current_job_facts() -> dict[str, object]:
    """What an xloader-style job learns about itself through RQ."""
    job = rq.get_current_job()
    assert job is not None
    job.meta["seen"] = "by the job"
    job.save_meta()
    return {"id": job.id, "meta": dict(job.meta), "pid": os.getpid()}


def sleep_then_clean_up(path: str, seconds: float) -> str:
    """As xloader: on RQ's JobTimeoutException, remove the temporary file and report it."""
    with open(path, "w") as f:
        f.write("temporary")
    try:
        time.sleep(seconds)
    except rq.timeouts.JobTimeoutException as exc:
        os.remove(path)
        return f"cleaned up after: {exc}"
    return "not timed out"


def wait_for_file(path: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    return "saw file" if os.path.exists(path) else "no file"


def _store():
    from offload.contrib.ckan.site import site_app

    return site_app().store


def _run(*queues: str) -> bool:
    return bool(jobs.Worker(list(queues) or None).work(burst=True))


# -- A. module level -------------------------------------------------------------------------------------------
def test_row_01_enqueue_returns_an_rq_job_with_title_args_and_a_log_line():
    with helpers.recorded_logs("ckan.lib.jobs") as logs:
        job = tk.enqueue_job(add, [1], {"b": 2}, title="Adding", queue="r01")
    assert isinstance(job, rq.job.Job) and job.meta == {"title": "Adding"}
    assert job.args == [1] and job.kwargs == {"b": 2} and job.origin == jobs.add_queue_name_prefix("r01")
    logs.assert_log("info", re.escape(f'Added background job {job.id} ("Adding") to queue "r01"'))
    assert job.get_status() == "queued" and _run("r01") and job.return_value(refresh=True) == 3


@pytest.mark.ckan_config("ckan.jobs.timeout", 77)
def test_row_02_rq_kwargs_timeout_as_rq_parses_it():
    assert jobs.enqueue(add, [1, 2]).timeout == 77  # ckan.jobs.timeout, read at the call
    given = {3600: 3600, "3600": 3600, "1h": 3600, "2m": 120, -1: -1, None: 180, 2.9: 2}
    for value, seconds in given.items():
        assert jobs.enqueue(add, [1, 2], rq_kwargs={"timeout": value}).timeout == seconds, value
    for bad in (0, "soon", "1y"):
        with pytest.raises(ValueError):
            jobs.enqueue(add, [1, 2], rq_kwargs={"timeout": bad})


def test_row_03_rq_kwargs_at_front():
    first = jobs.enqueue(add, [1, 1], queue="r03")
    normal = jobs.enqueue(add, [2, 2], queue="r03", rq_kwargs={"timeout": 60, "at_front": False})
    assert jobs.get_queue("r03").job_ids == [first.id, normal.id]
    front = jobs.enqueue(add, [3, 3], queue="r03", rq_kwargs={"timeout": "3600", "at_front": True})  # as xloader
    assert jobs.get_queue("r03").job_ids == [front.id, first.id, normal.id]
    assert front.enqueued_at <= first.enqueued_at  # its place in the queue
    with pytest.raises(ValueError, match="at_front=True is not supported for a scheduled job"):
        jobs.get_queue("r03").enqueue_in(60, add, 1, 1, at_front=True)
    with helpers.recorded_logs("ckan.lib.jobs") as logs:
        jobs.Worker(["r03"]).work(burst=True)
    assert f"starts job {front.id}" in logs.messages["info"][1]


def test_row_04_other_rq_kwargs_have_rqs_meaning_or_are_refused_by_name():
    job = jobs.enqueue(add, [1, 2], title="T", queue="r04", rq_kwargs={
        "job_id": "r04-fixed", "meta": {"k": 1}, "description": "adds", "result_ttl": 500, "failure_ttl": 60,
        "retry": rq.Retry(max=2, interval=5)})
    assert job.id == "r04-fixed" and job.meta == {"k": 1, "title": "T"} and job.description == "adds"
    assert job.record.max_attempts == 3 and job.record.retry["delay"] == 5
    with pytest.raises(rq.exceptions.DuplicateJobError):
        jobs.enqueue(add, [1, 2], rq_kwargs={"job_id": "r04-fixed", "unique": True})
    for name, value in (("ttl", 10), ("depends_on", job.id), ("on_success", add), ("repeat", 3)):
        with pytest.raises(ValueError, match=f"RQ option {name} is not supported by offload"):
            jobs.enqueue(add, [1, 2], rq_kwargs={name: value})
    with pytest.raises(TypeError, match="unknown RQ option"):
        jobs.enqueue(add, [1, 2], rq_kwargs={"job_timeout_typo": 1})
    assert _store().count(["r04"]) == 1  # the refused ones added nothing


def test_row_05_get_queue_and_get_job_queue():
    queue = tk.get_job_queue("r05")
    assert queue.name == jobs.add_queue_name_prefix("r05") == "ckan:test.ckan.net:r05"
    assert jobs.get_queue() == jobs.get_queue(jobs.DEFAULT_QUEUE_NAME) and queue != jobs.get_queue()


def test_row_06_copies_bound_before_offload_was_installed_are_rebound():
    import sys
    import types

    from offload.contrib.ckan import plugin

    plugin.uninstall()  # as before the plugin loaded: ckan.lib.jobs is RQ's
    try:
        ext = types.ModuleType("ckanext.offload_row06")
        from ckan.lib.jobs import get_queue as early_get_queue
        from ckan.plugins.toolkit import enqueue_job as early_enqueue
        ext.get_queue, ext.enqueue_job, ext.DEFAULT_QUEUE_NAME = early_get_queue, early_enqueue, "default"
        sys.modules[ext.__name__] = ext
        assert ext.get_queue.__module__ == "ckan.lib.jobs"
    finally:
        plugin.install()
    try:
        from offload.contrib.ckan import jobs as offload_jobs

        assert ext.get_queue is offload_jobs.get_queue and ext.enqueue_job is offload_jobs.enqueue
        assert ext.enqueue_job(add, [1, 2], queue="r06").origin.endswith(":r06")
    finally:
        del sys.modules["ckanext.offload_row06"]


def test_row_07_get_all_queues_is_this_sites_queues_only():
    jobs.enqueue(add, [1, 1], queue="r07a")
    jobs.get_queue("r07b").enqueue_in(dt.timedelta(hours=1), add, 1, 1)
    with helpers.changed_config("ckan.site_id", "some-other-ckan-instance"):
        jobs.enqueue(add, [1, 1], queue="r07c")
    names = {jobs.remove_queue_name_prefix(q.name) for q in jobs.get_all_queues()}
    assert names == {"r07a", "r07b"}


def test_row_08_job_from_id_finds_a_job_in_any_state_and_raises_key_error():
    scheduled = jobs.get_queue("r08").enqueue_in(60, add, 1, 1, job_id="r08-later")
    done = jobs.enqueue(add, [1, 1], queue="r08")
    failed = jobs.enqueue(fail, ["no"], queue="r08")
    _run("r08")
    assert jobs.job_from_id(scheduled.id).get_status() == "scheduled"
    assert jobs.job_from_id(done.id).get_status() == "finished"
    assert jobs.job_from_id(failed.id).get_status() == "failed"
    for missing in ("no-such-job", "bad id!"):
        with pytest.raises(KeyError, match="There is no job with ID"):
            jobs.job_from_id(missing)


def test_row_09_dictize_job():
    job = jobs.enqueue(add, [1, 1], title="Dict", queue="r09")
    assert jobs.dictize_job(job) == {"id": job.id, "title": "Dict", "queue": "r09",
                                     "created": job.created_at.strftime("%Y-%m-%dT%H:%M:%S")}
    assert job.created_at.tzinfo is not None


def test_row_10_queue_name_prefixes():
    assert jobs.remove_queue_name_prefix(jobs.add_queue_name_prefix("x")) == "x"
    with pytest.raises(ValueError, match=r'Queue name "x" is not prefixed\.'):
        jobs.remove_queue_name_prefix("x")


def test_row_11_worker_work_burst_runs_due_jobs_one_at_a_time_with_ckans_log_lines():
    a = jobs.enqueue(add, [1, 1], queue="r11")
    due = jobs.get_queue("r11").enqueue_in(0.2, add, 2, 2)
    later = jobs.get_queue("r11").enqueue_in(3600, add, 3, 3)
    time.sleep(0.3)
    with helpers.recorded_logs("ckan.lib.jobs") as logs:
        worker = jobs.Worker(["r11"])
        assert worker.work(burst=True, with_scheduler=False) is True
    infos = logs.messages["info"]
    assert len(infos) == 2 + 2 * 2 and worker.key in infos[0] and '"r11"' in infos[0]
    assert a.return_value(refresh=True) == 2 and due.return_value(refresh=True) == 4
    assert later.get_status() == "scheduled"
    assert jobs.Worker(["r11"]).work(max_idle_time=0.5) is False  # nothing due: stops after 0.5 s idle


# -- B. queue objects ------------------------------------------------------------------------------------------
def test_row_12_enqueue_in_schedules_a_job_as_the_datastore_does():
    from datetime import datetime, timedelta, timezone

    last_modified = datetime.now(timezone.utc)
    job = tk.get_job_queue().enqueue_in(timedelta(seconds=15), add, 20, 22, job_id="r12_patch-last_modified")
    assert job.id == "r12_patch-last_modified" and job.get_status() == "scheduled" and job.is_scheduled
    assert job.timeout == 180 and job.meta == {} and job.enqueued_at is None
    assert job.args == [20, 22]
    at = jobs.get_queue().scheduled_job_registry.get_scheduled_time(job)
    assert 14 <= (at - last_modified).total_seconds() <= 16
    seconds = tk.get_job_queue("r12").enqueue_in(0.2, add, 1, 2)
    time.sleep(0.3)
    assert _run("r12") and seconds.return_value(refresh=True) == 3


def test_row_13_enqueue_at_a_datetime_naive_is_local_time():
    queue = jobs.get_queue("r13")
    aware = queue.enqueue_at(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1), add, 1, 1)
    naive = queue.enqueue_at(dt.datetime.now() + dt.timedelta(hours=1), add, 1, 1)
    for job in (aware, naive):
        assert abs(job.record.run_at - (time.time() + 3600)) < 5
    past = queue.enqueue_at(dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1), add, 5, 5)
    assert _run("r13") and past.return_value(refresh=True) == 10


def test_row_14_queue_enqueue_and_enqueue_call_parse_rq_options():
    queue = jobs.get_queue("r14")
    job = queue.enqueue(add, 1, b=2, job_timeout="5m", job_id="r14-a", description="d", meta={"m": 1})
    assert job.kwargs == {"b": 2} and job.timeout == 300 and job.id == "r14-a" and job.description == "d"
    explicit = queue.enqueue(add, args=(3,), kwargs={"b": 4}, job_timeout=None)
    assert explicit.args == [3] and explicit.timeout == 180
    call = queue.enqueue_call(add, args=[5, 6], timeout=10)
    assert call.timeout == 10 and call.args == [5, 6]
    with pytest.raises(TypeError):
        queue.enqueue_call(add, args=[1, 1], job_timeout=10)
    assert _run("r14") and call.return_value(refresh=True) == 11


def test_row_15_registries_list_by_state_scheduled_by_due_time():
    queue = jobs.get_queue("r15")
    late = queue.enqueue_in(200, add, 1, 1, job_id="r15-late")
    soon = queue.enqueue_in(100, add, 1, 1, job_id="r15-soon")
    assert queue.scheduled_job_registry.get_job_ids() == ["r15-soon", "r15-late"]
    assert soon.id in queue.scheduled_job_registry and late in queue.scheduled_job_registry
    assert len(queue.scheduled_job_registry) == 2 and queue.started_job_registry.count == 0
    failed = queue.enqueue(fail, "x")
    _run("r15")
    assert queue.failed_job_registry.get_job_ids() == [failed.id] and queue.deferred_job_registry.count == 0


def test_row_16_fetch_job():
    queue = jobs.get_queue("r16")
    job = queue.enqueue_in(60, add, 1, 1)
    assert queue.fetch_job(job.id) == job and queue.fetch_job(job.id).get_status() == "scheduled"
    assert queue.fetch_job("missing") is None and jobs.get_queue("other").fetch_job(job.id) is None


def test_row_17_get_jobs_and_the_xloader_filter_on_them():
    queue = jobs.get_queue("r17")
    data = {"api_key": "k", "job_type": "xloader_to_datastore", "metadata": {"resource_id": "res-17"}}
    job = queue.enqueue_call(wait_for_file, args=[f"/nonexistent/{data['job_type']}/{data}"])
    other = queue.enqueue(add, 1, 1)
    listed = queue.get_jobs()
    assert listed == [job, other] and queue.get_job_ids(1) == [other.id] and queue.get_jobs(0, 1) == [job]
    assert [j.id for j in queue.get_jobs() if "xloader_to_datastore" in str(j)] == [job.id]


def test_row_18_jobs_job_ids_count():
    queue = jobs.get_queue("r18")
    ids = [jobs.enqueue(add, [i, i], queue="r18").id for i in range(3)]
    queue.enqueue_in(60, add, 9, 9)
    assert queue.job_ids == ids and [j.id for j in queue.jobs[:2]] == ids[:2]
    assert queue.count == len(queue) == 3 and not queue.is_empty()


def test_row_19_empty_clears_waiting_jobs_only_as_rq():
    queue = jobs.get_queue("r19")
    waiting = [jobs.enqueue(add, [i, i], queue="r19") for i in range(2)]
    scheduled = queue.enqueue_in(60, add, 1, 1)
    assert queue.empty() == 2
    assert queue.job_ids == [] and jobs.job_from_id(scheduled.id).get_status() == "scheduled"
    for job in waiting:
        with pytest.raises(KeyError):
            jobs.job_from_id(job.id)
    helpers.call_action("job_clear", queues=["r19"])
    assert jobs.job_from_id(scheduled.id).get_status() == "scheduled"


def test_row_20_enqueue_with_an_existing_job_id_replaces_the_job():
    queue = jobs.get_queue("r20")
    first = queue.enqueue_in(60, add, 1, 1, job_id="r20-id")
    second = queue.enqueue_in(30, add, 2, 2, job_id="r20-id")
    assert first.id == second.id and jobs.job_from_id("r20-id").args == [2, 2]
    assert queue.scheduled_job_registry.get_job_ids() == ["r20-id"]
    with pytest.raises(rq.exceptions.DuplicateJobError):
        queue.enqueue(add, 3, 3, job_id="r20-id", unique=True)


# -- C. job objects --------------------------------------------------------------------------------------------
def test_row_21_delete_is_silent_when_gone_and_does_not_stop_a_running_job(tmp_path):
    job = jobs.get_queue("r21").enqueue_in(60, add, 1, 1)
    jobs.job_from_id(job.id).delete()
    job.delete()  # already gone: RQ does not raise either
    with pytest.raises(KeyError):
        jobs.job_from_id(job.id)
    # A running job that is deleted runs to its end (its outcome dropped); a new job may take its id meanwhile.
    flag = tmp_path / "go"
    running = jobs.enqueue(wait_for_file, [str(flag)], queue="r21", rq_kwargs={"job_id": "r21-running"})
    import threading

    def delete_then_replace():
        from offload.contrib.ckan.site import site_app

        app = site_app()
        deadline = time.monotonic() + 30
        while app.store.get(running.id).state != "started" and time.monotonic() < deadline:
            time.sleep(0.05)
        jobs.job_from_id(running.id).delete()
        jobs.get_queue("r21").enqueue_in(3600, add, 7, 7, job_id="r21-running")
        time.sleep(1.5)  # a few lease checks of the worker: it must not stop the job
        flag.write_text("go")

    thread = threading.Thread(target=delete_then_replace)
    thread.start()
    with helpers.recorded_logs("ckan.lib.jobs") as logs:
        jobs.Worker(["r21"]).work(burst=True)
    thread.join(30)
    assert not [m for m in logs.messages.get("warning", []) if "canceled" in m]
    replacement = jobs.job_from_id("r21-running")
    assert replacement.get_status() == "scheduled" and replacement.args == [7, 7]  # not overwritten by the old one


def test_row_22_perform_runs_here_with_the_job_current_and_leaves_the_stored_job():
    job = tk.get_job_queue().enqueue_in(60, current_job_facts)
    facts = jobs.job_from_id(job.id).perform()
    assert facts["id"] == job.id and facts["pid"] == os.getpid()
    assert jobs.job_from_id(job.id).get_status() == "scheduled"
    assert jobs.job_from_id(job.id).meta == {"seen": "by the job"}
    with pytest.raises(ValueError, match="in perform"):
        jobs.enqueue(fail, ["in perform"], queue="r22").perform()
    assert rq.get_current_job() is None


def test_row_23_job_attributes_meta_and_save_meta():
    job = jobs.enqueue(add, [1], {"b": 2}, title="Attrs", queue="r23", rq_kwargs={"timeout": 9})
    assert job.id == job._id == job.get_id() and job.func_name.endswith("rows_ckan.add")
    assert job.timeout == 9 and job.origin.endswith(":r23")
    job.meta["progress"] = 50
    job.save_meta()
    assert jobs.job_from_id(job.id).meta == {"title": "Attrs", "progress": 50}
    assert job.get_meta() == {"title": "Attrs", "progress": 50}


def test_row_24_description_is_rqs_call_string():
    long_arg = "x" * 100
    job = jobs.enqueue(add, [1, long_arg], {"b": "y"}, title="Not the description", queue="r24")
    expected = f"{add.__module__}.add(1, '{'x' * 74}..., b='y')"
    assert job.description == job.get_call_string() == expected
    assert str(job) == f"<Job {job.id}: {expected}>"


def test_row_25_enqueued_at_is_none_while_scheduled_started_and_ended_at():
    scheduled = jobs.get_queue("r25").enqueue_in(60, add, 1, 1)
    assert scheduled.enqueued_at is None and scheduled.started_at is None
    job = jobs.enqueue(add, [1, 1], queue="r25")
    assert job.enqueued_at is not None and job.enqueued_at.tzinfo is not None
    _run("r25")
    job.refresh()
    assert job.started_at <= job.ended_at and job.worker_name
    assert f"{job.enqueued_at:%Y-%m-%d %H:%M}"  # as `ckan xloader status` formats it


def test_row_26_status_predicates_refresh_and_gone_jobs():
    job = jobs.enqueue(add, [1, 1], queue="r26")
    assert job.is_queued and job.get_position() == 0 and not job.is_deferred and not job.is_stopped
    _run("r26")
    job.refresh()
    assert job.is_finished and not job.is_queued and job.get_position() is None
    job.delete()
    for call in (job.refresh, job.get_status):
        with pytest.raises(rq.exceptions.NoSuchJobError):
            call()
        with pytest.raises(KeyError):
            call()


def test_row_27_return_value_result_exc_info():
    ok = jobs.enqueue(add, [2, 3], queue="r27")
    bad = jobs.enqueue(fail, ["broken"], queue="r27")
    _run("r27")
    assert ok.return_value(refresh=True) == 5 and ok.result == 5 and ok.exc_info is None
    bad.refresh()
    assert bad.is_failed and bad.return_value() is None
    assert "ValueError: broken" in bad.exc_info and "Traceback" in bad.exc_info


def test_row_28_cancel_and_requeue():
    job = jobs.enqueue(fail, ["x"], queue="r28")
    job.cancel()
    assert job.get_status() == "canceled" and job.is_canceled
    with pytest.raises(rq.exceptions.InvalidJobOperation):
        job.cancel()
    again = job.requeue()
    assert again.get_status() == "queued"


def test_row_29_jobs_are_rq_jobs():
    job = jobs.enqueue(add, [1, 1], queue="r29")
    assert isinstance(job, rq.job.Job) and isinstance(jobs.job_from_id(job.id), rq.job.Job)
    assert job == jobs.job_from_id(job.id) and hash(job) == hash(jobs.job_from_id(job.id))


# -- D. rq inside jobs -----------------------------------------------------------------------------------------
def test_row_30_get_current_job_in_a_job_process():
    job = jobs.enqueue(current_job_facts, queue="r30", rq_kwargs={"meta": {"given": True}})
    assert _run("r30")
    facts = job.return_value(refresh=True)
    assert facts["id"] == job.id and facts["pid"] != os.getpid()  # in the forked job process
    assert facts["meta"] == {"given": True, "title": None, "seen": "by the job"}
    assert jobs.job_from_id(job.id).meta["seen"] == "by the job"


def test_row_31_job_timeout_exception_lets_the_job_clean_up(tmp_path):
    path = tmp_path / "temp.csv"
    job = jobs.enqueue(sleep_then_clean_up, [str(path), 30], queue="r31", rq_kwargs={"timeout": 1})
    _run("r31")
    done = jobs.job_from_id(job.id)
    assert done.get_status() == "finished", done.exc_info
    assert done.return_value().startswith("cleaned up after:") and not path.exists()


@pytest.mark.usefixtures("with_test_worker")
def test_row_31_job_timeout_exception_in_the_test_worker(tmp_path):
    path = tmp_path / "temp.csv"
    job = jobs.enqueue(sleep_then_clean_up, [str(path), 30], queue="r31t", rq_kwargs={"timeout": 1})
    _run("r31t")
    assert jobs.job_from_id(job.id).return_value().startswith("cleaned up after: Task exceeded maximum timeout")
    assert not path.exists()


@pytest.mark.ckan_config("ckan.plugins", "offload")
@pytest.mark.usefixtures("with_plugins")
def test_row_35_no_option_is_not_declared_warning(caplog):
    from ckan.common import config, config_declaration

    from offload.config import SETTINGS
    from offload.contrib.ckan import site

    caplog.set_level(logging.DEBUG)
    keys = ["ckan.offload.store", "ckan.offload.dashboard", "ckan.offload.transactional"] + [
        f"ckan.{key}" for key in SETTINGS if key not in ("offload.store", "offload.site_id")]
    for key in keys:
        assert key in config_declaration, key
        config.get(key)  # without a default: CKAN warns about an undeclared option here
    assert config.get("ckan.offload.worker.max_jobs_per_child") == 1  # declared with CKAN's default, typed
    assert config.get("ckan.offload.dashboard") is True
    site.store_url()
    site.offload_settings()
    jobs.enqueue(add, [1, 1], queue="r35")
    assert not [r for r in caplog.records if "is not declared" in r.getMessage()]


# -- E. the worker ---------------------------------------------------------------------------------------------
def live_facts() -> dict[str, object]:
    """What a job sees of its site: settings and plugins, and which process it runs in."""
    import ckan.plugins as plugins
    from ckan.common import config

    return {"marker": config.get("ckanext.offload_test.marker", "(not set)"), "title": config.get("ckan.site_title"),
            "datastore": plugins.plugin_loaded("datastore"), "pid": os.getpid(), "ppid": os.getppid()}


def overrun(seconds: float) -> None:
    """Ignores the soft timeout, so that only the hard one ends it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.1)
        except BaseException:
            pass


def crash() -> None:
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.ckan_config("ckan.plugins", "datastore")
@pytest.mark.ckan_config("ckanext.offload_test.marker", "changed in memory")
@pytest.mark.usefixtures("with_plugins")
@pytest.mark.parametrize("jobs_per_process", [0, 1])
def test_row_32_the_job_process_has_the_workers_live_config_also_after_a_timeout_and_a_crash(ckan_config,
                                                                                         jobs_per_process):
    from offload.app import Offload
    from offload.contrib.ckan.site import site_app

    ckan_config["ckan.site_title"] = "Retitled in memory"  # after the ini was read, as a plugin's update_config may
    queue = f"r32-{jobs_per_process}"
    before = jobs.enqueue(live_facts, queue=queue)
    killed = jobs.enqueue(overrun, [60], queue=queue, rq_kwargs={"timeout": 1})
    crashed = jobs.enqueue(crash, queue=queue)
    after = jobs.enqueue(live_facts, queue=queue)
    worker = jobs.Worker([queue])
    base = site_app()
    worker._app = Offload(store=base.store, site_id=base.site_id, worker__max_jobs_per_child=jobs_per_process)
    worker.work(burst=True)

    first, last = before.return_value(refresh=True), after.return_value(refresh=True)
    for facts in (first, last):
        assert facts["marker"] == "changed in memory" and facts["title"] == "Retitled in memory", facts
        assert facts["datastore"] is True and facts["ppid"] == os.getpid() != facts["pid"]
    assert first["pid"] != last["pid"]  # a new fork after the kill and the crash, made the same way
    killed.refresh()
    crashed.refresh()
    assert killed.is_failed and killed.record.error["reason"] == "timeout"
    assert crashed.is_failed and crashed.record.error["reason"] == "crash"
