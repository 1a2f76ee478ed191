"""Tables on the terminal: aligned columns, a bold header and coloured states when the output is a terminal
(plain when piped, when ``NO_COLOR`` is set, or on a dumb terminal)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import IO

import click

STATE_COLOURS = {"scheduled": "yellow", "queued": "blue", "started": "cyan", "finished": "green", "failed": "red",
                 "canceled": "bright_black"}
#: A cell: its text, or (text, click.style keyword arguments).
Cell = str | tuple[str, dict[str, object]]


def colour_on(stream: IO[str] | None = None) -> bool:
    """Whether to colour output to ``stream`` (stdout by default): a terminal, NO_COLOR unset, TERM not dumb."""
    stream = stream if stream is not None else sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def state_cell(state: str, text: str | None = None) -> Cell:
    return (text if text is not None else state, {"fg": STATE_COLOURS.get(state)})


def duration_text(seconds: float | None) -> str:
    """``-``, ``850 ms``, ``12.0 s``, ``3.5 min``, ``2.0 h``, ``1.5 d``."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    for limit, unit, size in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
        if seconds < limit:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds / 86400:.1f} d"


def render(headers: Sequence[str], rows: Sequence[Sequence[Cell]], right: Sequence[int] = (),
           colour: bool = False) -> list[str]:
    """The table's lines: columns as wide as their widest cell, ``right`` columns aligned right."""
    texts = [[cell if isinstance(cell, str) else cell[0] for cell in row] for row in rows]
    widths = [max([len(headers[i]), *(len(row[i]) for row in texts)]) for i in range(len(headers))]

    def line(cells: Sequence[Cell], header: bool = False) -> str:
        parts = []
        for i, cell in enumerate(cells):
            text, style = (cell, {}) if isinstance(cell, str) else cell
            padded = text.rjust(widths[i]) if i in right else text.ljust(widths[i])
            if colour and header:
                padded = click.style(padded, bold=True)
            elif colour and any(style.values()):
                padded = click.style(padded, **style)  # type: ignore[arg-type]
            parts.append(padded)
        return "  ".join(parts).rstrip()

    return [line(headers, header=True), *(line(row) for row in rows)]
