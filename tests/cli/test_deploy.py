"""The deployment templates: the systemd unit passes ``systemd-analyze verify`` for an instance serving several
queues, and its command line, expanded as systemd expands it, starts a worker on those queues in that order."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from offload import Offload
from tests import jobfuncs

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "offload-worker@.service"
OFFLOAD = str(Path(sys.executable).with_name("offload"))
INSTALLED_AT = "/srv/app/.venv/bin/offload"


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        message = "systemd-analyze is not installed (apt-get install systemd)"
        if os.environ.get("OFFLOAD_REQUIRE_SERVICES"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def verify(unit_dir: Path, text: str, instance: str) -> subprocess.CompletedProcess[str]:
    path = unit_dir / "offload-worker@.service"
    path.write_text(text)
    return subprocess.run([systemd_analyze(), "verify", f"{path}:offload-worker@{instance}.service"],
                          capture_output=True, text=True, timeout=60)


def test_the_unit_verifies_for_an_instance_of_several_queues(tmp_path: Path) -> None:
    # As shipped, the only complaint is the path the application is not installed at on this machine.
    shipped = verify(tmp_path, UNIT.read_text(), "mail:default")
    assert shipped.returncode == 1
    assert shipped.stderr.strip() == f"offload-worker@mail:default.service: Command {INSTALLED_AT} is not " \
                                     "executable: No such file or directory", shipped.stderr
    # Pointed at this machine's offload and a directory that exists: no warning, no error.
    local = UNIT.read_text().replace(INSTALLED_AT, OFFLOAD).replace("/srv/app", str(tmp_path))
    result = verify(tmp_path, local, "mail:default")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_a_comma_is_not_a_valid_instance_name(tmp_path: Path) -> None:
    # Why the unit's separator is ':': systemd refuses the comma the unit's earlier comment suggested.
    result = verify(tmp_path, UNIT.read_text(), "mail,default")
    assert result.returncode != 0


def exec_start(instance: str) -> tuple[list[str], dict[str, str]]:
    """ExecStart= as systemd runs it: %i is the instance, $VAR alone is split into words; with Environment=."""
    env: dict[str, str] = {}
    command = ""
    for line in UNIT.read_text().splitlines():
        if line.startswith("Environment="):
            for assignment in shlex.split(line.partition("=")[2]):
                key, _, value = assignment.partition("=")
                env[key] = value
        elif line.startswith("ExecStart="):
            command = line.partition("=")[2]
    argv: list[str] = []
    for word in shlex.split(command.replace("%i", instance)):
        argv.extend(env.get(word[1:], "").split() if word.startswith("$") else [word])
    return argv, env


def test_the_command_line_serves_the_queues_of_the_instance_name(tmp_path: Path) -> None:
    argv, _ = exec_start("mail:default")
    assert argv == [INSTALLED_AT, "worker", "mail:default", "--concurrency", "2"]
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    app = Offload(store=store)
    mail = app.enqueue(jobfuncs.add, [1, 2], queue="mail")
    default = app.enqueue(jobfuncs.add, [3, 4], queue="default")
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    run_env.update({"OFFLOAD_STORE": store, "PYTHONPATH": str(ROOT)})
    out = subprocess.run([OFFLOAD, *argv[1:], "--burst"], capture_output=True, text=True, env=run_env,
                         cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert 'started on queue(s) "mail", "default" with 2 executor(s)' in out.stderr
    assert app.get_job(mail.id).result == 3 and app.get_job(default.id).result == 7
