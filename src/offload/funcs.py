"""Turning a callable into an import path a worker can resolve, and back.

A worker runs in another process, so a job names its function by import path (``pkg.mod:func`` or, for a
static or class method, ``pkg.mod:Class.method``). Whatever cannot be found again by that path is refused
at enqueue time, with the reason and what to do instead.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import sys
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


class EntryPoint:
    """One installed entry point: ``name = value`` in ``group``, declared by distribution ``dist_name``."""

    __slots__ = ("dist_name", "group", "name", "value")

    def __init__(self, name: str, value: str, group: str, dist_name: str) -> None:
        self.name = name
        self.value = value
        self.group = group
        self.dist_name = dist_name

    def load(self) -> Any:
        """Import what ``value`` (``module:attribute.path``, extras ignored) names."""
        module_name, _, qualname = self.value.split("[", 1)[0].strip().partition(":")
        target: Any = importlib.import_module(module_name.strip())
        for part in qualname.strip().split(".") if qualname.strip() else ():
            target = getattr(target, part)
        return target


_entry_points: dict[str, list[EntryPoint]] | None = None


def entry_points(group: str) -> list[EntryPoint]:
    """The installed distributions' entry points in ``group``, scanned once per process."""
    global _entry_points
    if _entry_points is None:
        _entry_points = _scan_entry_points()
    return list(_entry_points.get(group, ()))


def _scan_entry_points() -> dict[str, list[EntryPoint]]:
    """Every ``entry_points.txt`` of the distributions on ``sys.path``, the first of each name winning (as
    ``importlib.metadata`` resolves them). Read directly: importing ``importlib.metadata`` alone takes ~25 ms,
    on the start-up path of every worker. Zipped sys.path entries, rare, still go through it."""
    found: dict[str, list[EntryPoint]] = {}
    seen: set[str] = set()
    for entry in sys.path:
        directory = entry or "."
        if os.path.isfile(directory):
            _scan_zipped(directory, found, seen)
            continue
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            key = _DIST_NAME.sub("-", name.rsplit(".", 1)[0].split("-", 1)[0]).lower()
            if key in seen:
                continue
            seen.add(key)
            meta = os.path.join(directory, name)
            try:
                with open(os.path.join(meta, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except OSError:
                continue
            _parse_entry_points(text, _display_name(meta, key), found)
    return found


_DIST_NAME = re.compile(r"[-_.]+")


def _display_name(meta: str, fallback: str) -> str:
    for filename in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(meta, filename), encoding="utf-8") as f:
                for line in f:
                    if line.startswith("Name:"):
                        return line[5:].strip()
                    if not line.strip():
                        break
        except OSError:
            continue
    return fallback


def _parse_entry_points(text: str, dist_name: str, found: dict[str, list[EntryPoint]]) -> None:
    group = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1].strip()
        elif group is not None and "=" in line:
            name, value = line.split("=", 1)
            found.setdefault(group, []).append(EntryPoint(name.strip(), value.strip(), group, dist_name))


def _scan_zipped(path: str, found: dict[str, list[EntryPoint]], seen: set[str]) -> None:
    from importlib import metadata

    for dist in metadata.distributions(path=[path]):
        key = _DIST_NAME.sub("-", dist.metadata["Name"] or "").lower()
        if not key or key in seen:
            continue
        seen.add(key)
        for ep in dist.entry_points:
            found.setdefault(ep.group, []).append(EntryPoint(ep.name, ep.value, ep.group, dist.metadata["Name"]))
