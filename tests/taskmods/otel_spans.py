"""Imported by a worker's executors (``--import tests.taskmods.otel_spans``): an OpenTelemetry SDK tracer provider
whose spans go to the SDK's in-memory exporter and, as each one ends, as a JSON line to the file named by
``OFFLOAD_TEST_SPANS``, where the test reads them."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class FileCopyExporter(InMemorySpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(os.environ["OFFLOAD_TEST_SPANS"], "a") as out:
            for span in spans:
                out.write(json.dumps(json.loads(span.to_json())) + "\n")
        return super().export(spans)


provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(FileCopyExporter()))
trace.set_tracer_provider(provider)
