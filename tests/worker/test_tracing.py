"""OpenTelemetry: enqueue inside a request's span, run the job in a real worker (another process): the job's span
is a child of the request's span, with the job's attributes and outcome."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from offload import Offload
from tests import jobfuncs
from tests.web.conftest import ROOT, subprocess_env

otel = pytest.importorskip("opentelemetry.sdk.trace", reason="the OpenTelemetry SDK is not installed (offload[test])")


@pytest.fixture(scope="module")
def exporter() -> Iterator[Any]:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    yield memory


def _worker_spans(app: Offload, tmp_path: Path, *queues: str) -> list[dict[str, Any]]:
    spans = tmp_path / "spans.jsonl"
    out = subprocess.run([sys.executable, "-m", "offload", "--store", app.config["offload.store"], "--site-id",
                          app.site_id, "worker", "--burst", "--import", "tests.taskmods.otel_spans", *queues],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60, env=subprocess_env(
                             OFFLOAD_TEST_SPANS=str(spans), PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in spans.read_text().splitlines()]


def test_a_jobs_span_is_a_child_of_the_request_that_enqueued_it(exporter: Any, tmp_path: Path) -> None:
    from opentelemetry import trace

    app = Offload(store=f"sqlite:///{tmp_path / 'otel.db'}", site_id="otel")
    tracer = trace.get_tracer("the-web-app")
    with tracer.start_as_current_span("POST /datasets") as request:
        ok = app.enqueue(jobfuncs.add, [2, 3], title="Add", queue="traced")
        bad = app.enqueue(jobfuncs.fail, ["kaput"], queue="traced", max_attempts=1)
    untraced = app.enqueue(jobfuncs.noop, queue="traced")
    context = request.get_span_context()

    enqueues = [s for s in exporter.get_finished_spans() if s.name == "offload enqueue"]
    assert len(enqueues) == 3
    assert enqueues[0].parent is not None and enqueues[0].parent.span_id == context.span_id
    assert enqueues[0].attributes["offload.queue"] == "traced"
    assert "otel" not in app.get_job(untraced.id).meta, "no trace context outside a trace"

    spans = {s["attributes"]["offload.job_id"]: s for s in _worker_spans(app, tmp_path, "traced")
             if s["name"].startswith("offload run ")}
    assert set(spans) == {ok.id, bad.id, untraced.id}
    for job_id in (ok.id, bad.id):
        span = spans[job_id]
        assert span["context"]["trace_id"] == f"0x{context.trace_id:032x}"
        assert span["parent_id"] == f"0x{context.span_id:016x}", "the request's span is the job's parent"
        assert span["kind"] == "SpanKind.CONSUMER"
    assert spans[untraced.id]["parent_id"] is None
    assert spans[ok.id]["name"] == "offload run tests.jobfuncs:add"
    assert spans[ok.id]["attributes"] == {
        "offload.job_id": ok.id, "offload.queue": "traced", "offload.task": "tests.jobfuncs:add",
        "offload.attempt": 1, "offload.max_attempts": 3, "offload.outcome": "finished"}
    assert spans[bad.id]["attributes"]["offload.outcome"] == "failed"
    assert spans[bad.id]["status"]["status_code"] == "ERROR"
    assert "ValueError: kaput" in spans[bad.id]["status"]["description"]
