"""What the command line looks like: aligned tables, colour on a terminal only (never piped or with NO_COLOR),
``offload info --watch``, and ``worker --burst``'s progress bar (terminal only), quiet per-job lines and summary."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import jobfuncs
from tests.cli.test_cli import ROOT, Cli, on_a_terminal

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def _seed(cli: Cli) -> None:
    cli.app.enqueue(jobfuncs.noop, queue="mail")
    cli.app.enqueue(jobfuncs.noop, queue="mail", delay=3600)
    cli.app.enqueue(jobfuncs.noop, queue="a-much-longer-queue-name")


def test_tables_are_aligned_and_plain_when_piped(cli: Cli) -> None:
    _seed(cli)
    lines = cli("queues").stdout.splitlines()
    assert not any(ANSI.search(line) for line in lines)
    header, *rows = lines
    assert header.split() == ["queue", "scheduled", "queued", "started", "finished", "failed", "canceled", "latency",
                              "workers", "limit"]
    # Right-aligned numeric columns end where their header ends.
    for name in ("queued", "workers"):
        end = header.index(name) + len(name)
        assert all(row[end - 1] != " " and (len(row) == end or row[end] == " ") for row in rows), (name, lines)
    mail = next(row for row in rows if row.startswith("mail "))
    assert re.search(r"\d+ ms|\d+\.\d s", mail), "latency of the queued job"
    info = cli("info").stdout
    assert "Queues" in info and "Workers" in info and "There are no running workers." in info
    assert not ANSI.search(info)


def test_colour_on_a_terminal_unless_no_color(cli: Cli) -> None:
    _seed(cli)
    code, output = on_a_terminal(cli, "info", answer=None)
    assert code == 0 and ANSI.search(output), output
    assert "\x1b[1m" in output, "bold headers"
    code, output = on_a_terminal(cli, "info", answer=None, env={"NO_COLOR": "1"})
    assert code == 0 and not ANSI.search(output) and "Queues" in output


def test_info_watch_repeats_until_interrupted(cli: Cli) -> None:
    _seed(cli)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env.update({"OFFLOAD_STORE": cli.url, "OFFLOAD_SITE_ID": "cli", "PYTHONPATH": str(ROOT)})
    proc = subprocess.Popen([sys.executable, "-m", "offload", "info", "--watch", "0.2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cli.tmp)
    assert proc.stdout is not None
    snapshots = 0
    deadline = time.monotonic() + 30
    while snapshots < 3 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        snapshots += line.startswith("Queues")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0 and snapshots == 3


def test_burst_prints_no_line_per_job_and_always_its_summary(cli: Cli) -> None:
    cli.app.enqueue_many([jobfuncs.noop] * 40)
    out = cli("worker", "--burst")
    assert out.returncode == 0
    assert "started (attempt" not in out.stderr and "finished in" not in out.stderr
    assert len(out.stderr.splitlines()) < 10, out.stderr
    assert re.search(r"Burst done: 40 job\(s\) finished, 0 failed in \d+\.\d s", out.stderr)
    assert "\r" not in out.stderr, "no progress bar when piped"
    cli.app.enqueue_many([jobfuncs.noop] * 3)
    cli.app.enqueue(jobfuncs.fail, ["kaput"], max_attempts=1)
    out = cli("worker", "--burst", "--log-level", "warning")
    assert out.returncode == 0 and " INFO " not in out.stderr
    assert "Burst done: 3 job(s) finished, 1 failed" in out.stderr and "kaput" in out.stderr
    cli.app.enqueue(jobfuncs.noop, title="Shown")
    out = cli("worker", "--burst", "--log-level", "info")
    assert '("Shown") on queue "default" started (attempt 1 of' in out.stderr
    assert '("Shown") on queue "default" finished in' in out.stderr


def test_burst_draws_a_progress_bar_on_a_terminal(cli: Cli) -> None:
    cli.app.enqueue_many([jobfuncs.noop] * 30)
    code, output = on_a_terminal(cli, "worker", "--burst", answer=None)
    assert code == 0, output
    assert "Running jobs" in output and "30/30" in output, output
    assert "Burst done: 30 job(s) finished, 0 failed" in output


def test_info_marks_paused_queues(cli: Cli) -> None:
    _seed(cli)
    cli.app.pause("mail")
    lines = cli("info").stdout.splitlines()
    assert next(line for line in lines if line.startswith("mail ")).endswith("  paused")
    assert not next(line for line in lines if line.startswith("a-much-longer")).endswith("paused")


def test_purge_and_clear_draw_a_progress_bar_on_a_terminal_only(cli: Cli) -> None:
    jobs = cli.app.enqueue_many([jobfuncs.noop] * 30, queue="old")
    for job in jobs:
        cli.app.cancel(job.id)
    cli.app.enqueue_many([jobfuncs.noop] * 12, queue="a")
    cli.app.enqueue_many([jobfuncs.noop] * 3, queue="b", delay=600)
    code, output = on_a_terminal(cli, "purge", "--older-than", "0", answer=None)
    assert code == 0 and "Purging" in output and "30/30" in output and "Purged 30 job(s)" in output, output
    code, output = on_a_terminal(cli, "clear", "a", "b", answer=None)
    assert code == 0 and "Clearing" in output and "15/15" in output, output
    assert 'Cleared queue(s) "a", "b" (15 job(s))' in output
    cli.app.enqueue(jobfuncs.noop, queue="c")
    out = cli("clear", "c")
    assert out.stdout == 'Cleared queue(s) "c" (1 job(s))\n' and out.stderr == "", "nothing extra when piped"
