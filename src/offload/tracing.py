"""OpenTelemetry traces, when the ``opentelemetry`` API is installed (``pip install 'offload[otel]'``) and the
application configured a tracer provider; otherwise nothing here does anything, and nothing is imported.

- At enqueue, the current trace context (W3C ``traceparent``/``tracestate``, by the globally configured
  propagator) is stored in the job's ``meta["otel"]``, and an ``offload enqueue`` span (kind PRODUCER) records the
  store write.
- Each run of a job is an ``offload run <task or function>`` span (kind CONSUMER) in the executor that runs it,
  whose parent is the context stored at enqueue: the job's span is a child of the request that enqueued it, in
  whatever process and on whatever machine the job runs. Attributes: ``offload.job_id``, ``offload.queue``,
  ``offload.task`` (the task name or function path), ``offload.attempt``, ``offload.max_attempts`` and
  ``offload.outcome`` (``finished``, ``failed``, ``retry`` or ``timeout``); a failure sets the span's status to
  ERROR and records the exception.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from offload.jobs import Job, JobSpec

TRACE_KEY = "otel"
_otel: Any = None  # None: not looked up yet; False: not installed; else a namespace of the modules used


def _api() -> Any:
    global _otel
    if _otel is None:
        if importlib.util.find_spec("opentelemetry") is None:
            _otel = False
        else:
            import opentelemetry.propagate as propagate
            import opentelemetry.trace as trace

            _otel = type("Otel", (), {"trace": trace, "propagate": propagate})
    return _otel


def _configured(otel: Any) -> bool:
    """Whether the application set a tracer provider (the API's default one records nothing)."""
    return not isinstance(otel.trace.get_tracer_provider(), (otel.trace.ProxyTracerProvider,
                                                              otel.trace.NoOpTracerProvider))


def carry(meta: dict[str, Any]) -> None:
    """Store the current trace context in a new job's ``meta`` (nothing when there is no active trace)."""
    otel = _api()
    if not otel:
        return
    if not otel.trace.get_current_span().get_span_context().is_valid:
        return
    carrier: dict[str, str] = {}
    otel.propagate.inject(carrier)
    if carrier:
        meta[TRACE_KEY] = carrier


@contextmanager
def enqueue_span(jobs: Sequence[Job]) -> Iterator[None]:
    """An ``offload enqueue`` span around storing ``jobs``."""
    otel = _api()
    if not otel or not jobs or not _configured(otel):
        yield
        return
    first = jobs[0]
    attributes = {"offload.queue": first.queue, "offload.task": first.task or first.func or "",
                  "offload.job_id": first.id, "offload.jobs": len(jobs)}
    tracer = otel.trace.get_tracer("offload")
    with tracer.start_as_current_span("offload enqueue", kind=otel.trace.SpanKind.PRODUCER, attributes=attributes):
        yield


def _outcome(report: dict[str, Any]) -> str:
    if report.get("ok"):
        return "finished"
    error = report.get("error") or {}
    if error.get("timeout") or error.get("reason") == "timeout":
        return "timeout"
    return "retry" if error.get("reason") == "retry" else "failed"


@contextmanager
def run_span(spec: JobSpec) -> Iterator[Callable[[dict[str, Any]], None]]:
    """The span of one run of a job, child of the context stored at enqueue. Yields ``finish(report)``, which
    records the attempt's outcome."""
    otel = _api()
    if not otel or not _configured(otel):
        yield lambda report: None
        return
    carrier = spec.meta.get(TRACE_KEY) if isinstance(spec.meta, dict) else None
    parent = otel.propagate.extract(carrier) if isinstance(carrier, dict) else None
    target = spec.task or spec.func or ""
    attributes = {"offload.job_id": spec.id, "offload.queue": spec.queue, "offload.task": target,
                  "offload.attempt": spec.attempt, "offload.max_attempts": spec.max_attempts}
    tracer = otel.trace.get_tracer("offload")
    with tracer.start_as_current_span(f"offload run {target}", context=parent, kind=otel.trace.SpanKind.CONSUMER,
                                      attributes=attributes, record_exception=False,
                                      set_status_on_exception=False) as span:

        def finish(report: dict[str, Any]) -> None:
            outcome = _outcome(report)
            span.set_attribute("offload.outcome", outcome)
            if outcome != "finished":
                error = report.get("error") or {}
                description = f"{error.get('type', 'Error')}: {error.get('message', '')}"
                span.set_status(otel.trace.Status(otel.trace.StatusCode.ERROR, description))
                span.add_event("exception", {"exception.type": str(error.get("type", "")),
                                             "exception.message": str(error.get("message", ""))})

        yield finish
