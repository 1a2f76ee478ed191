"""The real ``offload`` command in a subprocess: outputs, exit codes, error paths."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from offload import Offload
from tests import jobfuncs

ROOT = Path(__file__).resolve().parents[2]


class Cli:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.url = f"sqlite:///{tmp / 'cli.db'}"
        self.app = Offload(store=self.url, site_id="cli")

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
        full_env.update({"OFFLOAD_STORE": self.url, "OFFLOAD_SITE_ID": "cli", "PYTHONPATH": str(ROOT)})
        full_env.update(env or {})
        return subprocess.run([sys.executable, "-m", "offload", *args], capture_output=True, text=True,
                              env=full_env, cwd=self.tmp, timeout=120)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_list_with_no_jobs(cli: Cli) -> None:
    out = cli("list")
    assert out.returncode == 0 and out.stdout == "There are no queued jobs.\n"


def test_list_formats_like_ckan(cli: Cli) -> None:
    titled = cli.app.enqueue(jobfuncs.noop, title="A title", queue="mail")
    plain = cli.app.enqueue(jobfuncs.noop)
    lines = cli("list").stdout.splitlines()
    assert re.fullmatch(rf'\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d {titled.id} mail "A title"', lines[0])
    assert re.fullmatch(rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d {plain.id} default", lines[1])
    assert cli("list", "mail", "--ids").stdout.split() == [titled.id]
    assert cli("list", "--limit", "1", "-i").stdout.split() == [titled.id]
    data = json.loads(cli("list", "--json").stdout)
    assert [d["id"] for d in data] == [titled.id, plain.id] and data[0]["title"] == "A title"


def test_list_by_state(cli: Cli) -> None:
    job = cli.app.enqueue(jobfuncs.noop)
    cli.app.cancel(job.id)
    assert cli("list").stdout == "There are no queued jobs.\n"
    assert job.id in cli("list", "--state", "canceled").stdout
    assert job.id in cli("list", "--state", "all").stdout
    assert cli("list", "--state", "bogus").returncode == 2


def test_show(cli: Cli) -> None:
    job = cli.app.enqueue(jobfuncs.add, [1, 2], title="Sum")
    out = cli("show", job.id)
    assert out.returncode == 0
    assert f"ID:       {job.id}" in out.stdout and 'Title:    "Sum"' in out.stdout
    assert "Queue:    default" in out.stdout and "State:    queued" in out.stdout
    assert "Args:     [1,2]" in out.stdout
    assert json.loads(cli("show", job.id, "--json").stdout)["args"] == [1, 2]


def test_show_failed_job_prints_traceback(cli: Cli) -> None:
    job = cli.app.enqueue(jobfuncs.fail, ["bad thing"], max_attempts=1)
    assert cli("worker", "--burst").returncode == 0
    out = cli("show", job.id).stdout
    assert "State:    failed" in out and "ValueError: bad thing" in out and "Traceback" in out


def test_unknown_ids_exit_1_with_ckan_message(cli: Cli) -> None:
    for command in ("show", "cancel", "retry"):
        out = cli(command, "no-such-id")
        assert out.returncode == 1, command
        assert out.stderr.strip() == 'There is no job with ID "no-such-id"'


def test_missing_argument_and_unknown_command_are_usage_errors(cli: Cli) -> None:
    for args in (["show"], ["cancel"], ["enqueue"], ["frobnicate"]):
        out = cli(*args)
        assert out.returncode == 2 and "Usage:" in out.stderr, args


def test_cancel_and_retry(cli: Cli) -> None:
    job = cli.app.enqueue(jobfuncs.noop)
    out = cli("cancel", job.id)
    assert out.returncode == 0 and out.stdout == f"Cancelled job {job.id}\n"
    assert cli.app.get_job(job.id).state == "canceled"
    again = cli("cancel", job.id)
    assert again.returncode == 1 and "already canceled" in again.stderr
    assert cli("retry", job.id).stdout == f"Requeued job {job.id}\n"
    assert cli.app.get_job(job.id).state == "queued"


def test_clear(cli: Cli) -> None:
    cli.app.enqueue(jobfuncs.noop, queue="a")
    cli.app.enqueue(jobfuncs.noop, queue="b")
    cli.app.enqueue(jobfuncs.noop, queue="c")
    assert cli("clear", "a").stdout == 'Cleared queue(s) "a" (1 job(s))\n'
    # Not a terminal (a script, as here): every queue without asking, as CKAN's ``ckan jobs clear`` does.
    assert cli("clear").stdout == 'Cleared queue(s) "b", "c" (2 job(s))\n'
    assert cli.app.store.count() == 0


def test_clear_of_a_queue_that_does_not_exist_clears_nothing(cli: Cli) -> None:
    cli.app.enqueue(jobfuncs.noop, queue="mail")
    out = cli("clear", "mail", "mial")
    assert out.returncode == 1
    assert out.stderr == 'Error: There is no queue named "mial" (queues with jobs: mail); nothing was cleared\n'
    assert cli.app.store.count(["mail"], ["queued"]) == 1


def on_a_terminal(cli: Cli, *args: str, answer: bytes | None, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as stdin and stdout; type ``answer`` at its prompt."""
    import pty
    import select

    leader, follower = pty.openpty()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_") and k not in ("NO_COLOR", "TERM")}
    full_env.update({"OFFLOAD_STORE": cli.url, "OFFLOAD_SITE_ID": "cli", "PYTHONPATH": str(ROOT), "TERM": "xterm"})
    full_env.update(env or {})
    proc = subprocess.Popen([sys.executable, "-m", "offload", *args], stdin=follower, stdout=follower,
                            stderr=follower, env=full_env, cwd=cli.tmp)
    os.close(follower)
    output = b""
    try:
        while proc.poll() is None or select.select([leader], [], [], 0)[0]:
            if select.select([leader], [], [], 0.1)[0]:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:
                    break
                output += chunk
                if answer is not None and b"[y/N]" in output:
                    os.write(leader, answer)
                    answer = None
    finally:
        os.close(leader)
    return proc.wait(30), output.decode().replace("\r\n", "\n")


def test_clear_of_every_queue_asks_first_on_a_terminal(cli: Cli) -> None:
    for queue in ("a", "b"):
        cli.app.enqueue(jobfuncs.noop, queue=queue)
    code, output = on_a_terminal(cli, "clear", answer=b"n\n")
    assert "Delete the 2 waiting job(s) of every queue (a, b)? [y/N]" in output
    assert code == 1 and "Aborted!" in output and cli.app.store.count(states=["queued"]) == 2
    code, output = on_a_terminal(cli, "clear", answer=b"y\n")
    assert code == 0 and 'Cleared queue(s) "a", "b" (2 job(s))' in output
    cli.app.enqueue(jobfuncs.noop, queue="c")
    code, output = on_a_terminal(cli, "clear", "--yes", answer=None)
    assert code == 0 and "[y/N]" not in output and cli.app.store.count(states=["queued"]) == 0
    cli.app.enqueue(jobfuncs.noop, queue="d")
    code, output = on_a_terminal(cli, "clear", "d", answer=None)  # a named queue: no question
    assert code == 0 and "[y/N]" not in output


def test_list_says_when_it_printed_only_some(cli: Cli) -> None:
    jobs = cli.app.enqueue_many([jobfuncs.noop] * 5, queue="q")
    out = cli("list", "--limit", "2", "--ids")
    assert out.stdout.split() == [j.id for j in jobs[:2]]
    assert out.stderr == ("Showing 2 of 5 queued jobs (from number 1); use --limit and --offset for the others.\n")
    out = cli("list", "--limit", "2", "--offset", "2", "--state", "pending")
    assert "Showing 2 of 5 scheduled, queued or started jobs (from number 3)" in out.stderr
    assert cli("list", "--limit", "5").stderr == "" and cli("list", "--offset", "3").stderr == ""


def test_list_searches_by_text_id_time_and_sorts(cli: Cli) -> None:
    old = cli.app.enqueue(jobfuncs.noop, title="Import catalogue", queue="a")
    report = cli.app.enqueue(jobfuncs.add, [1, 2], title="Monthly report", queue="b")
    later = cli.app.enqueue(jobfuncs.noop, title="Import mirror", queue="a")
    assert cli("list", "-q", "IMPORT", "--ids").stdout.split() == [old.id, later.id]
    assert cli("list", "-q", "import", "--desc", "--ids").stdout.split() == [later.id, old.id]
    assert cli("list", "-q", "jobfuncs:add", "--ids").stdout.split() == [report.id]
    assert cli("list", "--id", report.id, "--ids").stdout.split() == [report.id]
    assert cli("list", "--args", "[1,2]", "--ids").stdout.split() == [report.id]
    assert cli("list", "--args", "[1, 2]").stdout == "There are no queued jobs matching the filter.\n"
    assert cli("list", "b", "-q", "import").stdout == 'There are no queued jobs in queue(s) "b" matching the filter.\n'
    assert cli("list", "--since", "2000-01-01", "--until", "2000-01-02").stdout.startswith("There are no")
    assert len(cli("list", "--since", "2000-01-01T00:00", "--ids").stdout.split()) == 3
    out = cli("list", "-q", "import", "--limit", "1", "--ids")
    assert out.stdout.split() == [old.id] and "Showing 1 of 2 queued jobs" in out.stderr
    assert cli("list", "--sort", "payload").returncode == 2
    assert cli("list", "--since", "yesterday").returncode == 2


def test_list_names_the_states_it_looked_at(cli: Cli) -> None:
    cli.app.enqueue(jobfuncs.noop, queue="q")
    assert cli("list", "--state", "failed", "-s", "canceled").stdout == "There are no failed or canceled jobs.\n"
    assert cli("list", "other", "--state", "all").stdout == 'There are no jobs in queue(s) "other".\n'
    assert cli("list", "--offset", "1").stdout == "There are no queued jobs after the first 1.\n"


def test_show_of_a_job_that_finished_after_a_retry(cli: Cli, tmp_path: Path) -> None:
    job = cli.app.enqueue(jobfuncs.fail_once, [str(tmp_path / "marker")], max_attempts=2,
                          retry={"delay": 0, "jitter": False})
    assert cli("worker", "--burst").returncode == 0
    assert cli.app.get_job(job.id).state == "finished"
    out = cli("show", job.id).stdout
    assert "\nError:" not in out, "the old error is not the error of a finished job"
    assert "Attempts that failed:\n  #1 ValueError: the first attempt fails" in out


def test_test_command_and_worker(cli: Cli) -> None:
    out = cli("test", "default", "other")
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and re.fullmatch(r'Added test job [0-9a-f]{32} to queue "default"', lines[0])
    assert lines[1].endswith('to queue "other"')
    worker = cli("worker", "default", "other", "--burst")
    assert worker.returncode == 0
    assert "('A test job',)" in worker.stdout  # the test job prints its arguments, like CKAN's
    assert cli.app.store.count(states=["finished"]) == 2


def test_enqueue_command(cli: Cli) -> None:
    out = cli("enqueue", "tests.jobfuncs:add", "--args", "[2, 3]", "--queue", "maths", "--title", "Two plus three")
    assert out.returncode == 0, out.stderr
    job_id = re.fullmatch(r'Added job ([0-9a-f]{32}) to queue "maths"\n', out.stdout).group(1)
    assert cli("worker", "maths", "--burst").returncode == 0
    assert cli.app.get_job(job_id).result == 5
    kw = cli("enqueue", "tests.jobfuncs:echo", "--kwargs", '{"a": 1}', "--json")
    assert json.loads(kw.stdout)["kwargs"] == {"a": 1}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enqueue", "tests.jobfuncs:add", "--args", "[1,"], "not valid JSON"),
        (["enqueue", "tests.jobfuncs:add", "--args", '{"a": 1}'], "must be a JSON array"),
        (["enqueue", "tests.jobfuncs:add", "--kwargs", "[1]"], "must be a JSON object"),
    ],
)
def test_enqueue_bad_json_is_a_usage_error(cli: Cli, args: list[str], message: str) -> None:
    out = cli(*args)
    assert out.returncode == 2 and message in out.stderr
    assert cli.app.store.count() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enqueue", "not a path"], "not an import path"),
        (["enqueue", "tests.jobfuncs:add", "--queue", "bad queue"], "invalid queue name"),
        (["enqueue", "tests.jobfuncs:add", "--timeout", "0"], "timeout"),
        (["list", "bad/queue"], "invalid queue name"),
        (["worker", "bad queue", "--burst"], "invalid queue name"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(cli: Cli, args: list[str], message: str) -> None:
    out = cli(*args)
    assert out.returncode == 1 and message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert cli.app.store.count() == 0


def test_bad_store_url_and_config(cli: Cli, tmp_path: Path) -> None:
    out = cli("--store", "mysql://db", "list")
    assert out.returncode == 1 and "unknown store URL scheme 'mysql'" in out.stderr and "Traceback" not in out.stderr
    ini = tmp_path / "bad.ini"
    ini.write_text("[offload]\nworker.concurrency = lots\n")
    out = cli("-c", str(ini), "list")
    assert out.returncode == 1 and "offload.worker.concurrency" in out.stderr and "Traceback" not in out.stderr
    missing_dir = cli("--store", f"sqlite:///{tmp_path}/no/such/dir/x.db", "list")
    assert missing_dir.returncode == 1 and "does not exist" in missing_dir.stderr


def test_ini_file_and_config_command(cli: Cli, tmp_path: Path) -> None:
    ini = tmp_path / "offload.ini"
    ini.write_text(f"[offload]\noffload.store = sqlite:///{tmp_path}/from-ini.db\nsite_id = ini-site\n"
                   "api.tokens = topsecret:admin\n")
    full = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    full["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-m", "offload", "-c", str(ini), "config"], capture_output=True,
                         text=True, env=full, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "offload.site_id = 'ini-site'" in out.stdout and "from-ini.db" in out.stdout
    assert "topsecret" not in out.stdout and "***:admin" in out.stdout


def test_queues_workers_purge_migrate(cli: Cli) -> None:
    cli.app.enqueue(jobfuncs.noop, queue="mail")
    assert "mail" in cli("queues").stdout
    assert json.loads(cli("queues", "--json").stdout) == {"mail": {"queued": 1}}
    assert cli("workers").stdout == "There are no running workers.\n"
    assert cli("purge").stdout == "Purged 0 job(s)\n"
    assert cli("migrate").stdout.startswith("Store schema at version")


def test_demo(cli: Cli) -> None:
    out = cli("demo", "--jobs", "5")
    assert out.returncode == 0, out.stderr
    assert "Done in" in out.stdout and "6 finished" in out.stdout and "2 failed" in out.stdout


def test_show_draws_a_progress_bar(cli: Cli) -> None:
    job = cli.app.enqueue(jobfuncs.noop)
    cli.app.store.set_progress(job.id, {"done": 30, "total": 120, "message": "rows"}, None)
    out = cli("show", job.id).stdout
    assert "Progress: [#######.......................]  25% (30/120) rows" in out


def test_worker_on_an_unreachable_store_exits_1_and_leaves_no_executor(cli: Cli, tmp_path: Path) -> None:
    """The executors boot before the store is reached; a worker that cannot start must not leave them."""
    marker = f"offload-unreachable-{os.getpid()}"
    out = cli("--store", f"redis://127.0.0.1:1/0?connect_timeout=2&prefix={marker}", "worker", "-n", "2",
              env={"OFFLOAD_TEST_MARKER": marker})
    assert out.returncode == 1
    assert "127.0.0.1:1" in out.stderr and "Traceback" not in out.stderr
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if f"OFFLOAD_TEST_MARKER={marker}".encode() in environ:
            left.append(pid)
    assert left == [], f"executor processes left behind: {left}"
