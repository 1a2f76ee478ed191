"""The worker's import path: the folder it is started in (``--path``, default ``.``), in the supervisor and in every
executor, forked at start or spawned later, with the installed ``offload`` script (whose own folder, not the
current one, is what Python puts first on the path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from offload import Offload
from tests import jobfuncs

ROOT = Path(__file__).resolve().parents[2]
OFFLOAD = str(Path(sys.executable).with_name("offload"))
MODULE = "import os\n\ndef where(tag):\n    return [tag, os.getpid()]\n"


def start(cwd: Path, store: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env.update({"OFFLOAD_STORE": store, "PYTHONPATH": str(ROOT)})  # the tests' job modules, not ``cwd``
    return subprocess.run([OFFLOAD, "worker", "--burst", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=60)


def test_jobs_from_the_folder_the_worker_starts_in_run_in_forked_and_spawned_executors(tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "localjobs.py").write_text(MODULE)
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    app = Offload(store=store)
    first = app.enqueue("localjobs:where", ["forked"])
    crash = app.enqueue(jobfuncs.exit_hard, [3], max_attempts=1)  # its executor dies: the next one is spawned
    second = app.enqueue("localjobs:where", ["spawned"])
    out = start(app_dir, store)
    assert out.returncode == 0, out.stderr
    assert app.get_job(first.id).result[0] == "forked" and app.get_job(second.id).result[0] == "spawned"
    assert app.get_job(first.id).result[1] != app.get_job(second.id).result[1], "two executors"
    assert app.get_job(crash.id).state == "failed"


def test_path_names_other_folders(tmp_path: Path) -> None:
    code = tmp_path / "src"
    code.mkdir()
    (code / "elsewhere.py").write_text(MODULE)
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    app = Offload(store=store)
    job = app.enqueue("elsewhere:where", ["x"], max_attempts=1)
    out = start(tmp_path, store, "--path", "src")  # relative: made absolute at start
    assert out.returncode == 0 and app.get_job(job.id).state == "finished", out.stderr
    missed = app.enqueue("elsewhere:where", ["y"], max_attempts=1)
    assert start(tmp_path, store).returncode == 0
    assert "No module named 'elsewhere'" in app.get_job(missed.id).error["message"]
