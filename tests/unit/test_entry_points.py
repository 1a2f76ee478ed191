"""Entry points are read from the installed distributions' entry_points.txt, as importlib.metadata reads them."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import pytest

from offload import entrypoints


def test_the_scan_finds_what_importlib_metadata_finds() -> None:
    found = entrypoints._scan_entry_points()
    ours = {(group, ep.name, ep.value) for group, eps in found.items() for ep in eps}
    every = metadata.entry_points()
    theirs = {(ep.group, ep.name, ep.value) for group in every.groups for ep in every.select(group=group)}
    assert ours == theirs and ours


def _dist(site: Path, dirname: str, name: str, entry_points: str) -> None:
    dist = site / dirname
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n\nDescription\n")
    (dist / "entry_points.txt").write_text(entry_points)


def test_the_first_distribution_of_a_name_on_the_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _dist(first, "my_ext-2.0.dist-info", "My-Ext", "[offload.tasks]\n# a comment\nmine = os.path:join\n")
    _dist(second, "my.ext-1.0.dist-info", "my.ext", "[offload.tasks]\nold = os:getcwd\n")
    _dist(second, "other-1.0.dist-info", "other", "[offload.tasks]\nsep = os : sep [extra]\n[other.group]\nx = y\n")
    monkeypatch.setattr(sys, "path", [str(first), str(second), str(tmp_path / "missing")])
    found = entrypoints._scan_entry_points()
    tasks = {ep.name: ep for ep in found["offload.tasks"]}
    assert set(tasks) == {"mine", "sep"}
    assert tasks["mine"].dist_name == "My-Ext" and tasks["mine"].load() is __import__("os").path.join
    assert tasks["sep"].load() == __import__("os").sep
    assert [ep.name for ep in found["other.group"]] == ["x"]
