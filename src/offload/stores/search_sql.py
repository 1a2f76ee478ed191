"""The SQL of a job search, shared by the SQLite and PostgreSQL engines: the conditions of a ``JobQuery`` beyond
site, queues and states (which each engine writes its own way) and its order. Values travel as parameters,
through ``mark(value) -> placeholder``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from offload.jobs import JobQuery

Mark = Callable[[Any], str]


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its own ``%``, ``_`` and ``\\`` taken literally."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def conditions(query: JobQuery, mark: Mark, alias: str = "") -> list[str]:
    """SQL conditions for the id, text, arguments and time range of ``query`` (columns prefixed with ``alias``)."""
    a = f"{alias}." if alias else ""
    out: list[str] = []
    if query.job_id is not None:
        out.append(f"{a}id = {mark(query.job_id)}")
    if query.text is not None:
        pattern = _like(query.text)
        out.append("(" + " OR ".join(f"lower(coalesce({a}{column}, '')) LIKE {mark(pattern)} ESCAPE '\\'"
                                     for column in ("title", "func", "task")) + ")")
    if query.args is not None:
        out.append(f"lower({a}payload) LIKE {mark(_like(query.args))} ESCAPE '\\'")
    if query.created_after is not None:
        out.append(f"{a}created_at >= {mark(query.created_after)}")
    if query.created_before is not None:
        out.append(f"{a}created_at < {mark(query.created_before)}")
    return out


def order_by(query: JobQuery, alias: str = "") -> str:
    """ORDER BY for ``query``: its sort column, missing values last, ties in insertion order."""
    a = f"{alias}." if alias else ""
    direction = "DESC" if query.descending else "ASC"
    return f"{a}{query.sort} {direction} NULLS LAST, {a}seq {direction}"
