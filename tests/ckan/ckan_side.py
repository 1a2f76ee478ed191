"""Run in the CKAN venv by the CKAN tests: ``python ckan_side.py COMMAND INI [JSON]``.

``checks``: exercise the module surface and the worker's override points; print what was seen as JSON.
``setup``: create a sysadmin and a normal user with API tokens; print them as JSON.
``enqueue``: enqueue the jobs described by JSON ``[{"fn": "pkg.mod:fn", "args": [...], "title": ...,
"queue": ..., "via": "toolkit" | "lib"}, ...]`` from CKAN code; print each job's ``dictize_job`` plus its
timeout and meta as JSON.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any


def _load(ini: str) -> None:
    from ckan.cli import load_config
    from ckan.config.environment import load_environment

    load_environment(load_config(ini))


def setup() -> dict[str, Any]:
    import ckan.model as model
    import ckan.plugins.toolkit as tk

    out: dict[str, Any] = {}
    for name, sysadmin in (("offload-admin", True), ("offload-user", False)):
        tk.get_action("user_create")({"ignore_auth": True}, {
            "name": name, "email": f"{name}@example.org", "password": "correct-horse-battery"})
        if sysadmin:
            user = model.User.get(name)
            user.sysadmin = True
            model.Session.commit()
        token = tk.get_action("api_token_create")({"ignore_auth": True, "user": name},
                                                   {"user": name, "name": "tests"})
        out[name] = token["token"]
    return out


def enqueue(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import ckan.lib.jobs as lib_jobs
    import ckan.plugins.toolkit as tk

    out = []
    for spec in specs:
        module, _, name = spec["fn"].partition(":")
        fn = getattr(importlib.import_module(module), name)
        enqueue_fn = tk.enqueue_job if spec.get("via", "toolkit") == "toolkit" else lib_jobs.enqueue
        job = enqueue_fn(fn, spec.get("args"), spec.get("kwargs"), title=spec.get("title"),
                         queue=spec.get("queue", "default"), rq_kwargs=spec.get("rq_kwargs"))
        info = lib_jobs.dictize_job(job)
        info.update(timeout=job.timeout, meta=job.meta, origin=job.origin,
                    found=lib_jobs.dictize_job(lib_jobs.job_from_id(job.id)) == info)
        out.append(info)
    return out


def checks(record_path: str) -> dict[str, Any]:
    """The module surface on queue ``chk``, and the worker's override points."""
    import logging

    import ckan.lib.jobs as jobs
    import ckan.plugins.core as core
    import ckan_testjobs as tj

    out: dict[str, Any] = {"pid": os.getpid()}
    try:
        jobs.remove_queue_name_prefix("chk")
    except ValueError as exc:
        out["unprefixed"] = str(exc)
    out["roundtrip"] = jobs.remove_queue_name_prefix(jobs.add_queue_name_prefix("chk"))
    first = jobs.enqueue(tj.record, [record_path, "first"], queue="chk")
    second = jobs.enqueue(tj.record, [record_path], {"text": "second"}, title="2nd", queue="chk")
    queue = jobs.get_queue("chk")
    out["queue_name"] = queue.name
    out["job_ids"] = queue.job_ids == [first.id, second.id]
    fetched = jobs.job_from_id(first.id)
    out["equal"] = fetched == queue.jobs[0] and hash(fetched) == hash(first) and fetched != second
    out["job"] = {"args": fetched.args, "kwargs": fetched.kwargs, "meta": fetched.meta, "timeout": fetched.timeout,
                  "origin": fetched.origin, "created_at_tz": str(fetched.created_at.tzinfo)}
    out["all_queues"] = [q.name for q in jobs.get_all_queues()]
    try:
        jobs.job_from_id("no-such-job")
    except KeyError as exc:
        out["missing"] = str(exc)
    fetched.delete()
    out["after_delete"] = queue.job_ids == [second.id]
    out["emptied"] = queue.empty()
    out["after_empty"] = queue.job_ids
    jobs.enqueue(tj.record, [record_path, "x"], queue="chk")
    queue.delete()
    out["after_queue_delete"] = queue.job_ids

    # execute_job overridden to run in this process: the job's failure is logged here, with its traceback.
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(f"{record.process} {record.levelname} {record.name} {self.format(record)}")

    capture = Capture()
    logging.getLogger("ckan.lib.jobs").addHandler(capture)
    core._PLUGINS_SERVICE["offload_test_fork_observer"] = tj.ForkObserver(name="offload_test_fork_observer")
    jobs.enqueue(tj.fail_job, ["inprocess"], queue="chk-in")
    out["inprocess_ran"] = tj.InProcessWorker(["chk-in"]).work(burst=True)
    out["inprocess_log"] = list(lines)

    # perform_job overridden: it runs in the job process; before_fork is called before each job.
    os.environ["OFFLOAD_TEST_RECORD"] = record_path
    ids = [jobs.enqueue(tj.record, [record_path, f"rec{i}"], queue="chk-rec").id for i in range(2)]
    lines.clear()
    out["recording_ran"] = tj.RecordingWorker(["chk-rec"]).work(burst=True)
    out["recording_ids"] = ids
    out["recording_log"] = list(lines)
    out["before_fork_calls"] = tj.ForkObserver.calls
    with open(record_path) as f:
        out["recorded"] = f.read().splitlines()
    return out


def main() -> None:
    command, ini = sys.argv[1], sys.argv[2]
    _load(ini)
    if command == "setup":
        result: Any = setup()
    elif command == "enqueue":
        result = enqueue(json.loads(sys.argv[3]))
    elif command == "checks":
        result = checks(sys.argv[3])
    else:
        raise SystemExit(f"unknown command {command}")
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
