"""The ``offload`` command's entry point: which command lines get their executors started first thing."""

from __future__ import annotations

import pytest

from offload.launcher import executors_wanted


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        (["worker"], 1),
        (["worker", "default", "-n", "4"], 4),
        (["worker", "--concurrency", "3", "--burst"], 3),
        (["worker", "--concurrency=2"], 2),
        (["worker", "-n8"], 8),
        (["--store", "redis://x", "--site-id", "s", "worker", "high", "low"], 1),
        (["-c", "offload.ini", "worker", "-n", "2"], 2),
        (["--store=sqlite:///x.db", "worker", "-n", "2"], 2),
    ],
)
def test_a_worker_command_line_asks_for_its_executors(argv: list[str], wanted: int) -> None:
    assert executors_wanted(argv) == wanted


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["list"],
        ["show", "worker"],
        ["--help"],
        ["--version", "worker"],
        ["worker", "--help"],
        ["worker", "-h"],
        ["worker", "-n", "0"],
        ["worker", "-n", "many"],
        ["worker", "-n", "100000"],
    ],
)
def test_anything_else_starts_none(argv: list[str]) -> None:
    assert executors_wanted(argv) == 0
