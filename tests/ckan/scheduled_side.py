"""Run in the CKAN venv by test_scheduled_like_rq.py: ``python scheduled_side.py INI``. The datastore's way of
scheduling a job (``get_job_queue().enqueue_in(timedelta, fn, *args, job_id=...)``), then what CKAN shows of it:
first on stock CKAN (RQ, the offload plugin not loaded), then with offload's functions installed. Prints both as
``RESULT {"rq": {...}, "offload": {...}}``."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Any


def scheduled_view(name: str) -> dict[str, Any]:
    import ckan.lib.jobs as jobs
    import ckan.plugins.toolkit as tk

    context = {"ignore_auth": True}
    queue = tk.get_job_queue()
    queue.empty()
    job = queue.enqueue_in(timedelta(seconds=60), print, "scheduled", job_id=f"{name}_patch-last_modified")
    found = jobs.job_from_id(job.id)
    view = {
        "job_list": tk.get_action("job_list")(context, {}),
        "job_show": {k: v for k, v in tk.get_action("job_show")(context, {"id": job.id}).items() if k != "created"},
        "status": str(found.get_status()).rsplit(".", 1)[-1].lower(),
        "enqueued_at": found.enqueued_at, "timeout": found.timeout, "meta": found.meta,
        "queues": [jobs.remove_queue_name_prefix(q.name) for q in jobs.get_all_queues()],
        "scheduled_ids": queue.scheduled_job_registry.get_job_ids(),
    }
    tk.get_action("job_clear")(context, {})
    view["after_clear"] = str(jobs.job_from_id(job.id).get_status()).rsplit(".", 1)[-1].lower()
    jobs.job_from_id(job.id).delete()
    try:
        jobs.job_from_id(job.id)
        view["after_delete"] = "found"
    except KeyError:
        view["after_delete"] = "KeyError"
    view["job_show"]["id"] = view["job_show"]["id"].split("_", 1)[1]
    view["scheduled_ids"] = [i.split("_", 1)[1] for i in view["scheduled_ids"]]
    return view


def main() -> None:
    from ckan.cli import load_config
    from ckan.config.environment import load_environment

    load_environment(load_config(sys.argv[1]))
    from offload.contrib.ckan import plugin

    plugin.uninstall()
    rq_view = scheduled_view("rq")
    plugin.install()
    offload_view = scheduled_view("offload")
    print("RESULT " + json.dumps({"rq": rq_view, "offload": offload_view}))


if __name__ == "__main__":
    main()
