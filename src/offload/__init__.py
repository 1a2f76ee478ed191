"""offload: background jobs for Python web applications.

    import offload
    job = offload.enqueue(send_mail, [user_id], title="Welcome mail", queue="mail")
    offload.get_job(job.id).state   # "queued", later "finished"

The module-level functions act on a default ``Offload`` built from the configuration (arguments to
``configure()``, then ``OFFLOAD_*`` environment variables, then the ini file named by ``OFFLOAD_CONFIG``).
"""

from __future__ import annotations

import importlib
from types import EllipsisType

import offload.retry  # noqa: F401  (the submodule first: the function ``retry`` below must win the name)
from offload.default import configure, configure_lazily, default_app
from offload.errors import (
    ConfigError,
    DuplicateJob,
    InvalidJobState,
    InvalidQueueName,
    JobFunctionError,
    JobNotFound,
    JobTimeout,
    LeaseLost,
    OffloadError,
    SerializationError,
    StoreDriverMissing,
    StoreError,
    StoreUnavailable,
    StoreURLError,
    TaskNotFound,
)
from offload.retry import Retry, RetryPolicy, Snooze
from offload.version import __version__

# Not imported at run time (typing alone is ~10 ms, and every executor imports this package on its way up).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

    from offload.app import NO_TIMEOUT, Offload, Queue
    from offload.config import Config
    from offload.context import JobContext, current_job
    from offload.events.client import Client
    from offload.events.consumers import Consumer
    from offload.jobs import Job
    from offload.schedule import Schedule, periodic
    from offload.tasks import Task, task

# The rest of the public API is imported on first use (PEP 562), so that a process that needs only part of
# offload (an executor child, ``offload --help``) does not pay for all of it at start.
_LAZY = {
    "NO_TIMEOUT": "offload.app", "Offload": "offload.app", "Queue": "offload.app",
    "Client": "offload.events.client", "Config": "offload.config", "Consumer": "offload.events.consumers",
    "JobContext": "offload.context", "current_job": "offload.context", "Job": "offload.jobs",
    "Schedule": "offload.schedule", "periodic": "offload.schedule", "Task": "offload.tasks",
    "task": "offload.tasks",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'offload' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "NO_TIMEOUT",
    "Client",
    "Config",
    "ConfigError",
    "Consumer",
    "DuplicateJob",
    "InvalidJobState",
    "InvalidQueueName",
    "Job",
    "JobContext",
    "JobFunctionError",
    "JobNotFound",
    "JobTimeout",
    "LeaseLost",
    "Offload",
    "OffloadError",
    "Queue",
    "Retry",
    "RetryPolicy",
    "Schedule",
    "SerializationError",
    "Snooze",
    "StoreDriverMissing",
    "StoreError",
    "StoreURLError",
    "StoreUnavailable",
    "Task",
    "TaskNotFound",
    "__version__",
    "cancel",
    "clear",
    "configure",
    "configure_lazily",
    "current_job",
    "default_app",
    "enqueue",
    "enqueue_many",
    "get_job",
    "get_queue",
    "key_limits",
    "limit",
    "limits",
    "list_jobs",
    "notify",
    "pause",
    "paused",
    "periodic",
    "resume",
    "retry",
    "send_task",
    "task",
    "task_status",
    "task_statuses",
]


def enqueue(
    fn: Callable[..., Any] | str,
    args: Any = None,
    kwargs: Any = None,
    title: str | None = None,
    queue: str = "default",
    timeout: float | None = None,
    **options: Any,
) -> Job:
    """Add a job to a queue; see ``Offload.enqueue``."""
    return default_app().enqueue(fn, args, kwargs, title, queue, timeout, **options)


def enqueue_many(calls: Iterable[Any], **options: Any) -> list[Job]:
    return default_app().enqueue_many(calls, **options)


def send_task(name: str, args: Any = None, kwargs: Any = None, **options: Any) -> Job:
    return default_app().send_task(name, args, kwargs, **options)


def notify(routing_key: str, operation: str, payload: Any = None,
           origin: str | Sequence[str] | None = None, *, connection: Any = None) -> list[Job]:
    """Publish an event: one delivery job per matching consumer and webhook, added at once. ``origin`` is
    the chain of what caused it (default: the running delivery or job, if any); see ``offload.events``.
    ``connection``: inside the application's open transaction (see ``Offload.enqueue``)."""
    from offload.events.publish import notify as publish

    return publish(default_app(), routing_key, operation, payload, origin, connection=connection)


def get_job(job_id: str) -> Job:
    return default_app().get_job(job_id)


def get_queue(name: str = "default") -> Queue:
    return default_app().get_queue(name)


def list_jobs(queues: Sequence[str] | None = None, states: Sequence[str] | None = None, limit: int = 100,
              offset: int = 0, descending: bool = False) -> list[Job]:
    return default_app().list_jobs(queues, states, limit, offset, descending)


def cancel(job_id: str) -> Job:
    return default_app().cancel(job_id)


def retry(job_id: str) -> Job:
    return default_app().retry(job_id)


def clear(queues: Sequence[str] | None = None) -> int:
    return default_app().clear(queues)


def pause(queue: str) -> bool:
    """Pause a queue: workers take none of its jobs until ``resume(queue)``; False if it was paused already."""
    return default_app().pause(queue)


def resume(queue: str) -> bool:
    """Resume a paused queue; False if it was not paused."""
    return default_app().resume(queue)


def limit(queue: str, concurrency: int | EllipsisType | None = ...,
          key_concurrency: int | EllipsisType | None = ...) -> None:
    """Run at most ``concurrency`` jobs of ``queue`` at once across every worker, and at most ``key_concurrency`` of
    those sharing one ``limit_key`` (None: no such limit; left out: unchanged)."""
    default_app().limit(queue, concurrency, key_concurrency)


def key_limits() -> dict[str, int]:
    """The per-key concurrency limits of the default site's queues: name -> limit."""
    return default_app().key_limits()


def limits() -> dict[str, int]:
    """The concurrency limits of the default site's queues: name -> limit."""
    return default_app().limits()


def paused() -> dict[str, float]:
    """The paused queues of the default site: name -> when it was paused."""
    return default_app().paused()


def task_status(entity_type: str, entity_id: str, task_type: str) -> dict[str, Any] | None:
    """The latest job of ``task_type`` for an entity: state, error, last_updated ...; see ``offload.taskstatus``."""
    return default_app().task_status(entity_type, entity_id, task_type)


def task_statuses(entity_type: str, entity_id: str) -> list[dict[str, Any]]:
    return default_app().task_statuses(entity_type, entity_id)
