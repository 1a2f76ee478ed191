"""Property-based requests generated from the OpenAPI document (schemathesis): no input yields a 5xx.

The document is built from the action registry at import time (it needs no store); each generated request is
sent in-process to an app on a real SQLite store holding a few jobs. (schemathesis' fixture-based loader does
not run on pytest >= 9.2, hence the module-level schema.)
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from offload.web import openapi
from offload.web.actions import load_action_modules, registered_actions
from tests import jobfuncs
from tests.web.conftest import ADMIN, Site

MAX_EXAMPLES = 10
# The responses must be documented ones of the documented shape. (Not the checks that expect 401 for a missing
# token: like CKAN, the API answers 403.)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]



def _job_api_document() -> dict[str, Any]:
    """The document, less actions registered by other modules: the webhook actions send HTTP requests to the
    URLs they are given, so they are exercised by their own tests, never fed generated URLs."""
    load_action_modules()
    doc = openapi.document("/")
    ours = {name for name, act in registered_actions().items() if act.fn.__module__ == "offload.web.job_actions"}
    doc["paths"] = {path: item for path, item in doc["paths"].items()
                    if not path.startswith("/api/3/action/") or path.rsplit("/", 1)[1] in ours}
    return doc


schema = schemathesis.openapi.from_dict(_job_api_document())


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_causes_a_server_error(case: Any, sqlite_site: Site) -> None:
    if not sqlite_site.offload.store.count():
        sqlite_site.offload.enqueue(jobfuncs.noop, queue="default")
        sqlite_site.offload.enqueue(jobfuncs.noop, queue="mail")
    response = case.call(app=sqlite_site.app, headers={"Authorization": ADMIN})
    assert response.status_code < 500, (case.method, case.path, case.query, case.body, response.text[:500])
    case.validate_response(response, checks=CHECKS)
