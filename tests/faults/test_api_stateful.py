"""Bad input at the HTTP door, in stateful mode: schemathesis chains calls (enqueue, then show, cancel and retry
the job it returned, list, clear) with generated inputs against the API on a real SQLite store. No call may
answer 5xx, and every answer must be a documented one.

The OpenAPI document has no links, so this test adds them (to its own copy) to give the state machine
something to chain; the task parameter is narrowed to the registered tasks so that enqueues succeed and the
chains go on, and task_id is left out (the stateless test in tests/web/test_schemathesis.py fuzzes both). Bounded by
``MAX_EXAMPLES`` x ``STEPS`` calls, well under a minute; each scenario starts on a fresh site.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.web.conftest import ADMIN, Site, make_site
from tests.web.test_schemathesis import _job_api_document

MAX_EXAMPLES = 15
STEPS = 6
TASKS = ["tests.echo", "tests.invalid"]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
ACTIONS = "/api/3/action/"


def _with_links(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    paths = doc["paths"]
    body = paths[f"{ACTIONS}job_enqueue"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    body["properties"]["task"] = {"type": "string", "enum": TASKS}
    # schemathesis reads the optional task_id (the job id to use) as a reference to a "Task" resource nothing
    # creates, and would then never start a chain with an enqueue.
    body["properties"].pop("task_id", None)
    by_id = {"id": "$response.body#/result/id"}
    links = {f"{name.title()}Job": {"operationId": f"job_{name}_post", "requestBody": by_id}
             for name in ("show", "cancel", "retry")}
    for source in ("job_enqueue", "job_cancel", "job_retry"):
        paths[f"{ACTIONS}{source}"]["post"]["responses"]["200"]["links"] = links
    first = {"id": "$response.body#/result/0/id"}
    paths[f"{ACTIONS}job_list"]["post"]["responses"]["200"]["links"] = {
        f"{name.title()}Listed": {"operationId": f"job_{name}_post", "requestBody": first}
        for name in ("show", "cancel")}
    return doc


schema = schemathesis.openapi.from_dict(_with_links(_job_api_document()))


class _Site:
    """The site the state machine calls: a fresh one for each scenario (``APIWorkflow.setup``), so that what a
    scenario's calls answer (a job list, say) depends on that scenario alone. With one site for the whole run,
    a scenario replayed by hypothesis met the jobs of the scenarios run in between, the rules its links enable
    differed, and hypothesis stopped with ``FlakyStrategyDefinition`` (seen once in CI)."""

    site: Site | None = None
    tmp: Path | None = None

    @classmethod
    def get(cls) -> Site:
        if cls.site is None:
            cls.tmp = Path(tempfile.mkdtemp(prefix="offload-stateful-"))
            cls.site = make_site("sqlite", cls.tmp)
        return cls.site

    @classmethod
    def close(cls) -> None:
        if cls.site is not None:
            cls.site.stop_all()
            shutil.rmtree(cls.tmp or "", ignore_errors=True)
            cls.site = None


class APIWorkflow(schema.as_state_machine()):  # type: ignore[misc]
    def setup(self) -> None:
        _Site.close()

    def before_call(self, case: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": ADMIN}  # the admin token, whatever was generated

    def get_call_kwargs(self, case: Any) -> dict[str, Any]:
        return {"app": _Site.get().app}

    def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
        assert response.status_code < 500, (case.method, case.path, case.body, response.text[:500])
        case.validate_response(response, checks=CHECKS)


TestAPIWorkflow = APIWorkflow.TestCase
# derandomize: the same scenarios on every run, so that CI's verdict depends on the code alone.
TestAPIWorkflow.settings = settings(max_examples=MAX_EXAMPLES, stateful_step_count=STEPS, deadline=None,
                                    suppress_health_check=list(HealthCheck), derandomize=True, database=None)


def test_the_state_machine_starts_with_an_enqueue_and_follows_links() -> None:
    assert "POST /api/3/action/job_enqueue" in APIWorkflow._root_labels, "no chain would start with an enqueue"
    assert len(APIWorkflow._transitions.operations) >= 4, "the links were not understood; nothing would chain"


def teardown_module() -> None:
    _Site.close()
