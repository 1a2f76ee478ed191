"""The README's "Use" section, run from a fresh folder exactly as written: its files written as named, its shell
lines run by bash in that folder with the environment activated (``source .venv/bin/activate``) and nothing
else set, the worker started there by the installed ``offload`` script."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from offload import Offload

ROOT = Path(__file__).resolve().parents[2]
BLOCK_RE = re.compile(r"```(\w+)\n(.*?)```", re.S)


def use_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("\n## Use\n", 1)[1].split("\n## ", 1)[0]


def test_the_use_section_works_from_a_fresh_folder(tmp_path: Path) -> None:
    files: dict[str, str] = {}
    commands: list[str] = []
    for language, body in BLOCK_RE.findall(use_section()):
        first = body.splitlines()[0]
        if language == "python":
            match = re.fullmatch(r"# (\w+\.py)", first)
            assert match, f"a Python block names its file on its first line: {first!r}"
            files[match.group(1)] = body
        elif language == "sh":
            commands += [line for line in body.splitlines() if line.strip()]
    assert set(files) == {"tasks.py", "app.py"} and commands, (files, commands)
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    activate = Path(sys.executable).parent / "activate"
    script = "\n".join(["set -eu", f'source "{activate}"', *commands])
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OFFLOAD_", "PYTHON", "VIRTUAL_ENV")) and k != "PATH"}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert out.returncode == 0, (out.stdout, out.stderr)
    printed = out.stdout.splitlines()
    job_id = printed[0].split()[0]
    assert printed[0] == f"{job_id} queued"
    listed = rf'\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d {job_id} mail "Welcome mail" \[finished\]'
    assert re.fullmatch(listed, printed[1]), printed
    assert "No module named" not in out.stderr
    job = Offload(store=f"sqlite:///{tmp_path / 'offload.db'}").get_job(job_id)
    assert job.state == "finished" and job.result == "Welcome mail sent to user 42"
