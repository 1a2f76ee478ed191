"""Run in the CKAN venv by test_ckan_transactional.py: ``python ckan_transactional.py INI RECORD TRANSACTIONAL``.

An extension as CKAN sites have them: its ``IPackageController.after_dataset_create`` enqueues a follow-up job
for the new dataset with ``toolkit.enqueue_job`` (put among CKAN's plugins here, as ckan_side.py does with its
fork observer). Another plugin's ``after_dataset_create`` fails for datasets named ``broken-*``, after that
enqueue and before ``package_create`` commits. CKAN's own ``package_create`` runs both; after the failure this
does what CKAN does at the end of every request (``model.Session.remove()``, which rolls back what was not
committed). Then one more enqueue outside any write (as ``ckan jobs test`` does), and the process exits
without committing anything. Prints ``RESULT <json>``: the job ids each step got, and any error's text.
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

import ckan.plugins as plugins

QUEUE = "tx"
enqueued: dict[str, str] = {}


class Enqueuer(plugins.SingletonPlugin):
    plugins.implements(plugins.IPackageController, inherit=True)

    def after_dataset_create(self, context: Any, pkg_dict: dict[str, Any]) -> None:
        import ckan.plugins.toolkit as tk
        import ckan_testjobs

        job = tk.enqueue_job(ckan_testjobs.record, [RECORD, pkg_dict["name"]], title=pkg_dict["name"],
                             queue=QUEUE)
        enqueued[pkg_dict["name"]] = job.id


class Breaker(plugins.SingletonPlugin):
    plugins.implements(plugins.IPackageController, inherit=True)

    def after_dataset_create(self, context: Any, pkg_dict: dict[str, Any]) -> None:
        if pkg_dict["name"].startswith("broken-"):
            raise RuntimeError(f"the indexer refused {pkg_dict['name']}")


RECORD = ""


def main() -> None:
    global RECORD
    ini, RECORD, transactional = sys.argv[1], sys.argv[2], sys.argv[3]
    from ckan.cli import load_config
    from ckan.config.environment import load_environment

    load_environment(load_config(ini))
    import ckan.model as model
    import ckan.plugins.core as core
    import ckan.plugins.toolkit as tk
    import ckan_testjobs
    from ckan.common import config
    from sqlalchemy import select

    config["ckan.offload.transactional"] = transactional
    core._PLUGINS_SERVICE["offload_test_enqueuer"] = Enqueuer(name="offload_test_enqueuer")
    core._PLUGINS_SERVICE["offload_test_breaker"] = Breaker(name="offload_test_breaker")
    site_user = tk.get_action("get_site_user")({"ignore_auth": True}, {})
    context = {"ignore_auth": True, "user": site_user["name"]}
    suffix = uuid.uuid4().hex[:8]
    out: dict[str, Any] = {"ok": f"tx-ok-{suffix}", "broken": f"broken-{suffix}"}
    try:
        tk.get_action("package_create")(dict(context), {"name": out["ok"]})
    except Exception as exc:
        out["ok_error"] = f"{type(exc).__name__}: {exc}"
    model.Session.remove()
    try:
        tk.get_action("package_create")(dict(context), {"name": out["broken"]})
    except Exception as exc:
        out["broken_error"] = str(exc)
    model.Session.remove()  # CKAN's end of request: what was not committed is rolled back
    model.Session.execute(select(model.Package.id).limit(1))  # the session reads, writes nothing
    try:
        out["read_only_job"] = tk.enqueue_job(ckan_testjobs.record, [RECORD, "read-only"], queue=QUEUE).id
    except Exception as exc:
        out["read_only_error"] = str(exc)
    out["jobs"] = enqueued
    print("RESULT " + json.dumps(out))  # and exit without a commit


if __name__ == "__main__":
    main()
