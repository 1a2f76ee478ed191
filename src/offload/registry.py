"""Named tasks: functions registered under a stable name, sent by name.

``@offload.task(name="ext.echo")`` registers a function; ``offload.send_task("ext.echo", args=[...])`` enqueues
it by name, so producers need not import the function and the name survives refactoring. Workers import the
modules that define tasks at start (``--import``, ``offload.tasks.imports`` and the ``offload.tasks`` entry-point
group).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from offload.errors import TaskNotFound
from offload.retry import RetryPolicy

_NAME_RE = re.compile(r"[A-Za-z_][\w.:-]{0,199}")


@dataclass
class Task:
    """A registered task. Calling it runs the function here; ``send``/``delay`` enqueue it."""

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

    def send(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        from offload import default_app

        return default_app().send_task(self.name, args, kwargs, **options)

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.send(list(args), kwargs)

    def retry(self, exc: BaseException | None = None, countdown: float | None = None,
              max_retries: int | None = None) -> NoReturn:
        """Inside the task: stop this attempt and run again after ``countdown`` seconds (default 180)."""
        from offload.retry import DEFAULT_RETRY_DELAY, Retry

        raise Retry(countdown=DEFAULT_RETRY_DELAY if countdown is None else countdown,
                    max_retries=max_retries if max_retries is not None else self.max_retries, exc=exc)


_registry: dict[str, Task] = {}


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

    def register(fn: Callable[..., Any]) -> Task:
        task_name = name or f"{fn.__module__}.{fn.__qualname__}"
        if not _NAME_RE.fullmatch(task_name):
            raise ValueError(f"invalid task name {task_name!r}")
        existing = _registry.get(task_name)
        if existing is not None and existing.fn is not fn and existing.source != fn.__module__:
            raise ValueError(f"task name {task_name!r} is already registered by {existing.source}")
        registered = Task(task_name, fn, queue, timeout, max_retries, retry, source=fn.__module__,
                          no_retry_on=tuple(no_retry_on))
        _registry[task_name] = registered
        return registered

    return register


def lookup(name: str) -> Task:
    try:
        return _registry[name]
    except KeyError:
        raise TaskNotFound(
            f"no task named {name!r} is registered in this process; import the module that defines it "
            "(worker --import MODULE, offload.tasks.imports, or the offload.tasks entry point)"
        ) from None


def registered() -> dict[str, Task]:
    return dict(_registry)


def import_modules(modules: list[str]) -> None:
    for module in modules:
        importlib.import_module(module)


_loaded: set[str] = set()


def contributed_modules() -> list[tuple[str, str]]:
    """The task modules the ``offload.tasks`` entry points name, each with where it came from."""
    from offload.funcs import entry_points

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


def origin(registered_task: Task) -> str:
    """How the module defining a task was loaded: an entry point, config/--import, or plain import."""
    module = registered_task.source
    if module in _sources:
        return _sources[module]
    if module in _loaded:
        return "imported (offload.tasks.imports or --import)"
    return "imported by the application"
