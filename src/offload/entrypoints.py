"""Installed packages' entry points (``[project.entry-points."offload.tasks"]`` and the like), read directly.

``importlib.metadata`` would do, but importing it alone takes ~25 ms, on the start-up path of every worker; the
``entry_points.txt`` files it reads are simple enough to read here (zipped ``sys.path`` entries, rare, still go
through it).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any


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
