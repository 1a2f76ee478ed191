"""Turning a callable into an import path a worker can resolve, and back.

A worker runs in another process, so a job names its function by import path (``pkg.mod:func`` or, for a
static or class method, ``pkg.mod:Class.method``). Whatever cannot be found again by that path is refused
at enqueue time, with the reason and what to do instead.
"""

from __future__ import annotations

import functools
import importlib
import re
import types
from collections.abc import Callable
from typing import Any

from offload.errors import JobFunctionError

_PATH_RE = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


def normalise_path(path: str) -> str:
    """``pkg.mod:func`` as is; a dotted ``pkg.mod.func`` becomes ``pkg.mod:func``."""
    path = path.strip()
    if ":" not in path and "." in path:
        module, _, name = path.rpartition(".")
        path = f"{module}:{name}"
    if not _PATH_RE.fullmatch(path):
        raise JobFunctionError(
            f"{path!r} is not an import path; write it as 'package.module:function'"
        )
    return path


_paths: dict[Any, str] = {}


def func_path(fn: Callable[..., Any] | str) -> str:
    """The import path of ``fn``; raise ``JobFunctionError`` saying why when a worker could not import it."""
    if isinstance(fn, str):
        return normalise_path(fn)
    try:
        return _paths[fn]
    except (KeyError, TypeError):
        pass
    path = _find_path(fn)
    try:
        if len(_paths) < 10_000:
            _paths[fn] = path
    except TypeError:  # unhashable callable
        pass
    return path


def _find_path(fn: Callable[..., Any]) -> str:
    if isinstance(fn, functools.partial):
        raise JobFunctionError(
            "functools.partial objects cannot be job functions; enqueue the function and pass the "
            "arguments in args/kwargs"
        )
    if isinstance(fn, types.MethodType) and not isinstance(fn.__self__, type):
        raise JobFunctionError(
            f"bound method {fn.__qualname__} cannot be a job function: the worker has no access to the "
            "object it is bound to; enqueue a module-level function and pass what identifies the object "
            "(an id) as an argument"
        )
    name = getattr(fn, "__name__", None)
    qualname = getattr(fn, "__qualname__", None)
    module = getattr(fn, "__module__", None)
    if name is None or qualname is None:
        raise JobFunctionError(
            f"{fn!r} is not a function; enqueue a module-level function or an import path 'pkg.mod:func'"
        )
    if name == "<lambda>":
        raise JobFunctionError("lambdas cannot be job functions; define a module-level function and enqueue that")
    if "<locals>" in qualname:
        raise JobFunctionError(
            f"{qualname} is defined inside another function, so a worker cannot import it; "
            "move it to module level"
        )
    if module is None:
        self_module = getattr(getattr(fn, "__self__", None), "__name__", None)
        module = self_module if isinstance(self_module, str) else None
    if module is None:
        raise JobFunctionError(f"cannot tell which module defines {qualname}; pass an import path 'pkg.mod:func'")
    if module == "__main__":
        raise JobFunctionError(
            f"{qualname} is defined in __main__ (the script being run), which a worker cannot import; "
            "move it into a module and import it from there"
        )
    path = f"{module}:{qualname}"
    try:
        found = resolve(path, cache=False)
    except JobFunctionError:
        found = None
    if found is not fn and found != fn:
        raise JobFunctionError(
            f"{qualname} cannot be found again as {path!r} (was it replaced or decorated without "
            "functools.wraps?); enqueue an import path 'pkg.mod:func' that names it"
        )
    return path


_cache: dict[str, Callable[..., Any]] = {}


def resolve(path: str, cache: bool = True) -> Callable[..., Any]:
    """Import and return the callable named by ``pkg.mod:qual.name``."""
    if cache and path in _cache:
        return _cache[path]
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise JobFunctionError(f"{path!r} is not an import path; write it as 'package.module:function'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise JobFunctionError(f"cannot import module {module_name!r} for job function {path!r}: {exc}") from None
    for part in qualname.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise JobFunctionError(f"module {module_name!r} has no attribute {qualname!r}") from None
    if not callable(target):
        raise JobFunctionError(f"{path!r} is not callable")
    if cache:
        _cache[path] = target
    return target  # type: ignore[no-any-return]


def job_function(func: str | None, task: str | None) -> Callable[..., Any]:
    """The callable a job runs: its task's registered function, or the function at its import path."""
    if task is not None:
        from offload.registry import lookup

        return lookup(task).fn
    if func is None:
        raise JobFunctionError("the job names neither a function nor a task")
    return resolve(func)
