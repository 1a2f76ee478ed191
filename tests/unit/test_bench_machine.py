"""bench/machine.py: the check that a benchmark starts on an idle machine sees a real busy process."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux /proc")


@pytest.fixture(scope="module")
def machine() -> Any:
    spec = importlib.util.spec_from_file_location("bench_machine", BENCH / "machine.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_spinning_process_is_seen_by_name_and_flagged(machine: Any) -> None:
    spinner = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdout.write('go\\n'); sys.stdout.flush()\n"
                                "while True: pass"], stdout=subprocess.PIPE, text=True)
    try:
        assert spinner.stdout is not None and spinner.stdout.readline() == "go\n"
        load = machine.other_load(0.5)
    finally:
        spinner.kill()
        spinner.wait()
    seen = {p["pid"]: p for p in load["top"]}
    assert spinner.pid in seen and seen[spinner.pid]["cores"] > 0.5
    assert load["busy_cores"] >= seen[spinner.pid]["cores"] - 0.05
    assert "NOT IDLE" in machine.describe(load)


def test_the_header_warns_when_another_process_kept_the_machine_busy(machine: Any) -> None:
    idle = {"busy_cores": 0.03, "top": []}
    spinner = {"busy_cores": 0.98, "top": [{"pid": 5183, "name": "bash", "cores": 0.97}]}
    quiet = machine.load_lines({"before": idle, "rounds": [idle, idle], "busy_limit": 0.2})
    assert "0.03 cores before the run, 0.03 / 0.03 before each round" in quiet[0]
    assert "Not an idle machine" not in quiet[0]
    busy = machine.load_lines({"before": idle, "rounds": [idle, spinner], "busy_limit": 0.2})
    assert "Not an idle machine" in busy[0] and "bash (pid 5183) 0.97" in busy[0]
    assert machine.load_lines(None) == []  # a results file from before the check
