"""Named tasks: functions registered under a stable name, sent by name.

``@offload.task(name="ext.echo")`` registers a function; ``offload.send_task("ext.echo", args=[...])`` enqueues
it by name, so producers need not import the function and the name survives refactoring. The registry itself
(looking names up, loading the modules that define tasks) is ``offload.registry``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from offload.registry import RegisteredTask, check_name, register
from offload.retry import RetryPolicy


class Task(RegisteredTask):
    """A registered task. Calling it runs the function here; ``send``/``delay`` enqueue it on the default site."""

    def send(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        from offload.default import default_app

        return default_app().send_task(self.name, args, kwargs, **options)

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.send(list(args), kwargs)


def task(
    name: str | None = None,
    *,
    queue: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    retry: RetryPolicy | None = None,
    no_retry_on: tuple[type[BaseException], ...] = (),
) -> Callable[[Callable[..., Any]], Task]:
    """Register the decorated function as a task named ``name`` (default: ``module.function``)."""

    def decorate(fn: Callable[..., Any]) -> Task:
        registered = Task(check_name(name or f"{fn.__module__}.{fn.__qualname__}"), fn, queue, timeout,
                          max_retries, retry, source=fn.__module__, no_retry_on=tuple(no_retry_on))
        register(registered)
        return registered

    return decorate
