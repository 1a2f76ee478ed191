"""``offload.current_job()``: what a running job knows about itself, and how it reports progress; which exception
the soft timeout raises in a job (``use_timeout_exception``)."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from offload.errors import JobTimeout

ProgressSink = Callable[[str, "dict[str, Any] | None", "dict[str, Any] | None"], None]


class JobContext:
    """The job being run by this thread. ``set_progress`` is stored and shown by every interface."""

    __slots__ = ("_sink", "attempt", "id", "max_attempts", "meta", "queue", "title")

    def __init__(self, id: str, attempt: int, max_attempts: int, queue: str, title: str | None,
                 meta: dict[str, Any] | None = None, _sink: ProgressSink | None = None) -> None:
        self.id = id
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.queue = queue
        self.title = title
        self.meta = {} if meta is None else meta
        self._sink = _sink

    def __repr__(self) -> str:
        return (f"JobContext(id={self.id!r}, attempt={self.attempt}, max_attempts={self.max_attempts}, "
                f"queue={self.queue!r}, title={self.title!r}, meta={self.meta!r})")

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


_timeout_exception: type[JobTimeout] = JobTimeout


def use_timeout_exception(cls: type[JobTimeout]) -> None:
    """Make the soft timeout raise ``cls`` in jobs of this process (and of executors it forks afterwards).

    ``cls`` must subclass ``offload.JobTimeout``; it is raised with one argument, a message naming the time limit.
    An integration uses this to give jobs the exception class their code already catches: the CKAN plugin
    registers one that also subclasses ``rq.timeouts.JobTimeoutException``. Call it at import time of a module
    that executors import (``offload.tasks.imports``, ``--import``), so that every executor has it."""
    if not (isinstance(cls, type) and issubclass(cls, JobTimeout)):
        raise TypeError(f"use_timeout_exception() needs a subclass of offload.JobTimeout, not {cls!r}")
    global _timeout_exception
    _timeout_exception = cls


def timeout_exception() -> type[JobTimeout]:
    """The class the soft timeout raises in jobs (``offload.JobTimeout`` unless ``use_timeout_exception`` changed
    it)."""
    return _timeout_exception
