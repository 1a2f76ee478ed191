"""The exit codes of the ``offload`` command, as docs/deployment.md ("Exit codes") documents them, each case run
with the installed ``offload`` script in a subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from offload import Offload
from tests import jobfuncs
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
OFFLOAD = str(Path(sys.executable).with_name("offload"))

CASES = [
    (0, ["list"]),
    (0, ["worker", "--burst"]),
    (0, ["worker", "--max-idle-time", "0.2"]),
    (1, ["show", "no-such-id"]),
    (1, ["cancel", "no-such-id"]),
    (1, ["clear", "no-such-queue"]),
    (1, ["enqueue", "tests.jobfuncs:add", "--timeout", "0"]),
    (1, ["worker", "bad queue!"]),
    (1, ["worker", "--burst", "--import", "no_such_module"]),
    (1, ["--store", "bogus://x", "list"]),
    (1, ["--store", "redis://127.0.0.1:1/0", "list"]),
    (1, ["purge", "--older-than", "-1"]),
    (1, ["serve", "--host", "0.0.0.0", "--port", "0"]),
    (2, ["show"]),
    (2, ["frobnicate"]),
    (2, ["worker", "--concurrency", "0"]),
    (2, ["list", "--state", "bogus"]),
    (2, ["enqueue", "tests.jobfuncs:add", "--args", "[1,"]),
]


def run(tmp: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env.update({"OFFLOAD_STORE": f"sqlite:///{tmp / 'x.db'}", "PYTHONPATH": str(ROOT)})
    return subprocess.run([OFFLOAD, *args], capture_output=True, text=True, env=env, cwd=tmp, timeout=60,
                          **kwargs)  # type: ignore[call-overload]


@pytest.mark.parametrize(("code", "args"), CASES, ids=[" ".join(a) for _, a in CASES])
def test_exit_code(tmp_path: Path, code: int, args: list[str]) -> None:
    Offload(store=f"sqlite:///{tmp_path / 'x.db'}").enqueue(jobfuncs.noop, queue="mail")
    out = run(tmp_path, *args)
    assert out.returncode == code, (out.stdout, out.stderr)
    if code:
        assert "Traceback" not in out.stderr, out.stderr
        assert out.stderr.strip(), "a failure says why on stderr"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_worker_stopped_by_a_signal_exits_0(tmp_path: Path, signum: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env["OFFLOAD_STORE"] = f"sqlite:///{tmp_path / 'x.db'}"
    log = tmp_path / "worker.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen([OFFLOAD, "worker"], env=env, cwd=tmp_path, stderr=stderr)
    wait_until(lambda: "started on queue(s)" in log.read_text())
    proc.send_signal(signum)
    assert proc.wait(30) == 0


def test_a_killed_worker_reports_the_signal(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env["OFFLOAD_STORE"] = f"sqlite:///{tmp_path / 'x.db'}"
    log = tmp_path / "worker.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen([OFFLOAD, "worker"], env=env, cwd=tmp_path, stderr=stderr)
    wait_until(lambda: "started on queue(s)" in log.read_text())
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL  # a shell shows 137 (128 + 9)
    shell = subprocess.run(["sh", "-c", f'"{OFFLOAD}" worker & pid=$!; kill -9 $pid; wait $pid; echo $?'],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert shell.stdout.strip() == "137"


def test_declining_the_question_of_clear_exits_1(tmp_path: Path) -> None:
    from tests.cli.test_cli import Cli, on_a_terminal

    cli = Cli(tmp_path)
    cli.app.enqueue(jobfuncs.noop, queue="mail")
    code, output = on_a_terminal(cli, "clear", answer=b"n\n")
    assert code == 1 and "Aborted!" in output


def test_the_documented_table_has_these_codes() -> None:
    text = (ROOT / "docs" / "deployment.md").read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    codes = re.findall(r"^\| `?(\d+|128 \+ N)`? \|", section, re.M)
    assert codes == ["0", "1", "2", "128 + N"], codes
