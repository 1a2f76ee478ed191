"""``offload.current_job()``: what a running job knows about itself, and how it reports progress."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ProgressSink = Callable[[str, "dict[str, Any] | None", "dict[str, Any] | None"], None]


@dataclass
class JobContext:
    """The job being run by this thread. ``set_progress`` is stored and shown by every interface."""

    id: str
    attempt: int
    max_attempts: int
    queue: str
    title: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    _sink: ProgressSink | None = None

    def set_progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Report progress, e.g. ``set_progress(30, 120, "rows")``; ``total`` None means unknown."""
        progress = {"done": done, "total": total, "message": message}
        if self._sink is not None:
            self._sink(self.id, progress, None)

    def update_meta(self, **values: Any) -> None:
        """Merge JSON values into the job's ``meta`` (visible in ``offload show`` and the API)."""
        self.meta.update(values)
        if self._sink is not None:
            self._sink(self.id, None, dict(self.meta))


_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar("offload_job", default=None)


def current_job() -> JobContext | None:
    """The job running in this thread, or None outside a job."""
    return _current.get()


def enter(spec: Any, sink: ProgressSink | None) -> contextvars.Token[JobContext | None]:
    ctx = JobContext(spec.id, spec.attempt, spec.max_attempts, spec.queue, spec.title, dict(spec.meta or {}), sink)
    return _current.set(ctx)


def leave(token: contextvars.Token[JobContext | None]) -> None:
    _current.reset(token)
