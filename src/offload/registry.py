"""The task registry: task names -> registered functions, and loading the modules that register them.

``offload.tasks`` (``@offload.task``) adds to it; producers look a name up to learn its defaults, workers to find
the function. Workers import the modules that define tasks at start (``--import``, ``offload.tasks.imports`` and
the ``offload.tasks`` entry-point group).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from offload.entrypoints import entry_points
from offload.errors import TaskNotFound
from offload.retry import RetryPolicy

_NAME_RE = re.compile(r"[A-Za-z_][\w.:-]{0,199}")


@dataclass
class RegisteredTask:
    """A function registered under a task name, with its defaults. Calling it runs the function here."""

    name: str
    fn: Callable[..., Any]
    queue: str | None = None
    timeout: float | None = None
    max_retries: int | None = None
    retry_policy: RetryPolicy | None = None
    source: str = ""
    no_retry_on: tuple[type[BaseException], ...] = ()
    options: dict[str, Any] = field(default_factory=dict)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def retry(self, args: Any = None, kwargs: Any = None, exc: BaseException | None = None, throw: bool = True,
              eta: Any = None, countdown: float | None = None, max_retries: int | None = None,
              **options: Any) -> NoReturn:
        """Inside the task: end this attempt and run the task again, as Celery's ``Task.retry``: after
        ``countdown`` seconds (default 180) or at ``eta``, with ``args`` / ``kwargs`` replacing the arguments
        (None: the same ones), at most ``max_retries`` retries (default: the task's). ``exc`` is recorded as this
        attempt's failure, and is the error the job ends with once no retry is left (without it, the error is
        ``MaxRetriesExceededError``). Raises ``offload.Retry``, which the worker acts on."""
        from offload.retry import DEFAULT_RETRY_DELAY, MaxRetriesExceededError, Retry

        if not throw:
            raise TypeError("retry(throw=False) is not supported: an offload job is retried when its attempt ends, "
                            "so the retry must end it (leave throw out, or raise the Retry it would return)")
        if options:
            raise TypeError(f"retry() got option(s) offload does not have: {', '.join(sorted(options))}")
        if max_retries is None:
            max_retries = self.max_retries
        if exc is None and max_retries is not None:
            from offload.context import current_job

            job = current_job()
            if job is not None and job.attempt > max_retries:
                exc = MaxRetriesExceededError(
                    f"Can't retry {self.name}[{job.id}]: {max_retries} retries used (args: {args!r}, "
                    f"kwargs: {kwargs!r})")
        if eta is None and countdown is None:
            countdown = DEFAULT_RETRY_DELAY
        raise Retry(countdown=countdown, max_retries=max_retries, exc=exc, args=args, kwargs=kwargs, eta=eta)


_registry: dict[str, RegisteredTask] = {}


def check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"invalid task name {name!r}")
    return name


def register(task: RegisteredTask) -> None:
    """Add ``task`` under its name; a name taken by another module's function is refused."""
    existing = _registry.get(task.name)
    if existing is not None and existing.fn is not task.fn and existing.source != task.source:
        raise ValueError(f"task name {task.name!r} is already registered by {existing.source}")
    _registry[task.name] = task


def lookup(name: str) -> RegisteredTask:
    try:
        return _registry[name]
    except KeyError:
        raise TaskNotFound(
            f"no task named {name!r} is registered in this process; import the module that defines it "
            "(worker --import MODULE, offload.tasks.imports, or the offload.tasks entry point)"
        ) from None


def registered() -> dict[str, RegisteredTask]:
    return dict(_registry)


def import_modules(modules: list[str]) -> None:
    for module in modules:
        importlib.import_module(module)


_loaded: set[str] = set()


def contributed_modules() -> list[tuple[str, str]]:
    """The task modules the ``offload.tasks`` entry points name, each with where it came from."""
    found: list[tuple[str, str]] = []
    for ep in entry_points("offload.tasks"):
        provider = ep.load()
        found.extend((module, f"entry point {ep.name}") for module in provider())
    return found


def load_registry(imports: list[str] | tuple[str, ...] = (),
                  contributed: list[tuple[str, str]] | None = None) -> None:
    """Import the task modules named in config and contributed by the ``offload.tasks`` entry points.
    ``contributed``: the entry points' modules as ``contributed_modules`` found them in another process (a
    worker's supervisor tells its executors, which then need not scan the installed packages themselves)."""
    if "<entry points>" not in _loaded:
        _loaded.add("<entry points>")
        for module, source in contributed_modules() if contributed is None else contributed:
            import_modules([module])
            _sources[module] = source
    for module in imports:
        if module not in _loaded:
            import_modules([module])
            _loaded.add(module)


_sources: dict[str, str] = {}


def origin(registered_task: RegisteredTask) -> str:
    """How the module defining a task was loaded: an entry point, config/--import, or plain import."""
    module = registered_task.source
    if module in _sources:
        return _sources[module]
    if module in _loaded:
        return "imported (offload.tasks.imports or --import)"
    return "imported by the application"
