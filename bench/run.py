"""Run offload and its peers through the same workloads, side by side, and write bench/results/latest.*.

    python bench/run.py --quick            # a few minutes
    python bench/run.py --full             # the published figures
    python bench/run.py --quick --only offload,rq --workloads drain,latency --stores redis

Each peer lives in its own virtual environment under bench/.venvs/<peer>, installed from the pins in
bench/peers/requirements/<peer>.txt (reinstalled when the pins change); offload runs in the repository's
.venv (or bench/.venvs/offload, made on demand). Every (system, store, workload) cell runs in fresh
processes: the adapter bench/peers/<system>_bench.py inside the peer's venv, which starts one worker.
Cells run in rounds (every cell once, then again, three times), so a slow spell of the shared machine
hits every system alike; figures are medians of the rounds and ratios to the baseline (RQ's stock worker)
measured in the same run. See bench/README.md for what each workload measures.

Standard library only: runs with any Python 3.10+.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from machine import BUSY_LIMIT, describe, other_load
from report import BASELINE, METRICS, add_ratios, against_peers, summarize, write_markdown

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS = BENCH / "peers"
VENVS = BENCH / ".venvs"
WORK = BENCH / ".work"
RESULTS = BENCH / "results"

# system -> (venv, adapter script, stores); the order is the table's order.
SYSTEMS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "offload": ("offload", "offload_bench.py", ("sqlite", "redis", "postgres")),
    "rq": ("rq", "rq_bench.py", ("redis",)),
    "rq-simple": ("rq", "rq_simple_bench.py", ("redis",)),
    "celery": ("celery", "celery_bench.py", ("redis",)),
    "dramatiq": ("dramatiq", "dramatiq_bench.py", ("redis",)),
    "huey": ("huey", "huey_bench.py", ("redis", "sqlite")),
    "saq": ("saq", "saq_bench.py", ("redis", "postgres")),
    "arq": ("arq", "arq_bench.py", ("redis",)),
    "procrastinate": ("procrastinate", "procrastinate_bench.py", ("postgres",)),
    # Not a system: each store's bare write, for enqueue only (bench/peers/floor_bench.py).
    "floor": ("offload", "floor_bench.py", ("sqlite", "redis", "postgres")),
}
# Extra import paths of a system, ahead of bench/peers: offload@REF runs offload's src/ as at a git ref.
SYSTEM_PATHS: dict[str, list[str]] = {}
# Systems that run only some workloads (and skip the verification, which needs a worker).
ONLY_WORKLOADS: dict[str, tuple[str, ...]] = {"floor": ("enqueue",)}
STORES = ("sqlite", "redis", "postgres")
WORKLOADS = ("drain", "enqueue", "latency", "io")

# Per mode: jobs per workload, samples for latency, the verification size and each cell's time budget (s).
# "cap": drain, io and (serial) enqueue stop measuring after that many seconds and report the rate so far
# (a slow system then shows its rate over the first seconds instead of holding the run for minutes);
# latency stops sampling after that many seconds (at least 10 samples). No entry = no cap.
MODES: dict[str, dict[str, Any]] = {
    "quick": {"drain": 2000, "enqueue": 2000, "latency": 50, "io": 1000, "check": 50, "budget": 90,
              "cap": {"drain": 10, "enqueue": 5, "io": 10, "latency": 10}, "repeats": 3},
    "full": {"drain": 10000, "enqueue": 10000, "latency": 200, "io": 1000, "check": 200, "budget": 900,
             "cap": {}, "repeats": 3},
}



def log(message: str) -> None:
    print(message, flush=True)


# -- virtual environments ---------------------------------------------------------------------------------------
def base_python() -> str:
    """The interpreter the peers' venvs are made with: $BENCH_PYTHON, else a Python 3.11, else this one."""
    candidates = [os.environ.get("BENCH_PYTHON"), shutil.which("python3.11"),
                  "/root/.pyenv/versions/3.11.7/bin/python3", sys.executable]
    for candidate in candidates:
        if candidate and os.path.exists(candidate):
            return candidate
    return sys.executable


def _pip(python: Path, *args: str) -> None:
    log_path = python.parent.parent / "bench-install.log"
    with open(log_path, "w") as out:
        proc = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", *args],
                              stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, f"pip install {' '.join(args)} (see {log_path})")


def ensure_venv(name: str) -> Path:
    """The python of venv ``name``, (re)installed when its pinned requirements changed."""
    if name == "offload":
        return offload_python()
    requirements = PEERS / "requirements" / f"{name}.txt"
    venv = VENVS / name
    python = venv / "bin" / "python"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = venv / ".bench-requirements"
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    log(f"  installing {name} into {_show(venv)} from {_show(requirements)}")
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([base_python(), "-m", "venv", str(venv)], check=True)
    _pip(python, "-r", str(requirements))
    stamp.write_text(digest)
    return python


def offload_source() -> str:
    """The offload code measured: its commit, and whether src/ had uncommitted changes."""
    git = ["git", "--no-optional-locks", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "src"], capture_output=True,
                           text=True).stdout.strip()
    return f"commit {head or '?'}" + (" + uncommitted changes in src/" if dirty else "")


#: What offload's adapter and the floor import in offload's venv: offload itself, psycopg (its PostgreSQL
#: driver, the ``postgres`` extra) and redis-py, the bench's own client for resetting Redis and reading its
#: version (offload's ``redis`` extra brings it too, with hiredis).
OFFLOAD_IMPORTS = "import offload, redis, hiredis, psycopg"


def offload_python() -> Path:
    """offload's own venv: the repository's .venv if it has everything the adapter imports, else
    bench/.venvs/offload, made here: offload editable with its ``redis`` and ``postgres`` extras, plus the pins of
    bench/peers/requirements/offload.txt (reinstalled when that file changes)."""
    repo_python = REPO / ".venv" / "bin" / "python"
    if repo_python.exists() and _imports_ok(repo_python):
        return _compiled(repo_python)
    requirements = PEERS / "requirements" / "offload.txt"
    venv = VENVS / "offload"
    python = venv / "bin" / "python"
    stamp = venv / ".bench-requirements"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if not (python.exists() and stamp.exists() and stamp.read_text() == digest and _imports_ok(python)):
        log(f"  installing offload (editable, redis and postgres extras) and {_show(requirements)} into {_show(venv)}")
        if venv.exists():
            shutil.rmtree(venv)
        subprocess.run([base_python(), "-m", "venv", str(venv)], check=True)
        _pip(python, "-e", f"{REPO}[redis,postgres]", "-r", str(requirements))
        if not _imports_ok(python):
            raise subprocess.CalledProcessError(1, f"{python} -c '{OFFLOAD_IMPORTS}' after installing")
        stamp.write_text(digest)
    return _compiled(python)


def _imports_ok(python: Path) -> bool:
    return subprocess.run([str(python), "-c", OFFLOAD_IMPORTS], capture_output=True).returncode == 0


def offload_at(ref: str) -> tuple[str, Path]:
    """(commit, src/ folder) of offload as at git ``ref``: a ``git archive`` of src/ under bench/.work/, run
    with offload's venv ahead of its editable install (PYTHONPATH comes first), so that a run can measure the
    code before and after a change side by side."""
    git = ["git", "--no-optional-locks", "-C", str(REPO)]
    commit = subprocess.run([*git, "rev-parse", "--short", ref], capture_output=True, text=True, check=True).stdout
    target = WORK / f"offload-{commit.strip()}"
    if not (target / "src" / "offload").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run([*git, "archive", commit.strip(), "src"], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(target / "src")], check=True,
                       stdout=subprocess.DEVNULL)
    return commit.strip(), target / "src"


def add_offload_ref(ref: str) -> str:
    """Register system ``offload@<ref>``: the offload adapter with offload's code as at ``ref``."""
    name = f"offload@{ref}"
    commit, src = offload_at(ref)
    SYSTEMS[name] = (SYSTEMS["offload"][0], SYSTEMS["offload"][1], SYSTEMS["offload"][2])
    SYSTEM_PATHS[name] = [str(src)]
    log(f"  {name}: offload's src/ at commit {commit}, from {_show(src)}")
    return name


def before_after(rows: list[dict[str, Any]], before: str) -> list[dict[str, Any]]:
    """offload's median over ``before``'s, per store, workload and figure (same run, same rounds)."""
    medians = {(r["system"], r["store"], r["workload"]): r.get("median") or {} for r in rows}
    out = []
    for (system, store, workload), after in medians.items():
        if system != "offload":
            continue
        old = medians.get((before, store, workload), {})
        for key, value in after.items():
            if isinstance(value, (int, float)) and isinstance(old.get(key), (int, float)) and old[key]:
                out.append({"store": store, "workload": workload, "key": key, "after": value,
                            "before": old[key], "ratio": value / old[key]})
    return out


def _compiled(python: Path) -> Path:
    """Write the bytecode of offload's sources and of every system's job modules, as ``pip install``
    does for the peers' packages. An editable install is compiled on first import only where bytecode
    may be written; with ``PYTHONDONTWRITEBYTECODE`` set (as on our CI machines) every worker and every
    executor would otherwise compile offload from source at start, which no installed package does."""
    subprocess.run([str(python), "-m", "compileall", "-q", str(REPO / "src" / "offload"), str(PEERS)],
                   check=True, stdout=subprocess.DEVNULL)
    return python


# -- running one cell -------------------------------------------------------------------------------------------
def _processes_with_token(token: str) -> list[int]:
    """Pids of the processes this cell started (they all carry its token in their environment)."""
    needle = f"BENCH_CELL_TOKEN={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _end_leftovers(token: str) -> int:
    pids = _processes_with_token(token)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


def run_cell(
    python: Path, system: str, store: str, workload: str, n: int, budget: float, workdir: Path, cap: float = 0.0,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    script = PEERS / SYSTEMS[system][1]
    workdir.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    env = dict(os.environ, BENCH_CELL_TOKEN=token, PYTHONPATH=os.pathsep.join([*SYSTEM_PATHS.get(system, []),
               str(PEERS)]), PYTHONDONTWRITEBYTECODE="1")
    for var in ("OFFLOAD_STORE", "OFFLOAD_SITE_ID", "OFFLOAD_CONFIG"):
        env.pop(var, None)
    argv = [str(python), str(script), workload, "--store", store, "--n", str(n), "--workdir", str(workdir),
            "--budget", str(budget), "--cap", str(cap), *extra]
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, cwd=str(PEERS), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True, text=True)
    try:
        out, err = proc.communicate(timeout=budget + 15)
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGKILL)
        _end_leftovers(token)
        raise
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
    leftovers = _end_leftovers(token)
    elapsed = time.monotonic() - started
    result: dict[str, Any] | None = None
    for line in reversed(out.strip().splitlines()):
        try:
            result = json.loads(line)
            break
        except ValueError:
            continue
    if result is None:
        tail = "\n".join((err or "").strip().splitlines()[-8:])
        result = {"ok": False, "error": f"adapter exited with code {proc.returncode} and no result; stderr:\n{tail}"}
    result["cell_seconds"] = round(elapsed, 2)
    if leftovers:
        result["leftover_processes_killed"] = leftovers
    if result.get("ok"):
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        result["workdir"] = _show(workdir)
    return result


# -- machine -----------------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"cores": os.cpu_count(), "platform": platform.platform(),
                            "python_run_py": platform.python_version()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return info


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


# -- chart ------------------------------------------------------------------------------------------------------
def write_chart(report_path: Path, png_path: Path) -> str | None:
    try:
        python = ensure_venv("tools")
    except subprocess.CalledProcessError as exc:
        return f"could not install the chart tools: {exc}"
    proc = subprocess.run([str(python), str(BENCH / "chart.py"), str(report_path), str(png_path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"chart.py exited {proc.returncode}"
    return None


# -- main --------------------------------------------------------------------------------------------------------
def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="offload's side-by-side benchmark against its peers.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", const="quick", dest="mode", help="a few minutes (default)")
    mode.add_argument("--full", action="store_const", const="full", dest="mode", help="the full sizes")
    parser.add_argument("--only", type=_csv, default=None, help=f"systems, comma-separated: {','.join(SYSTEMS)}")
    parser.add_argument("--workloads", type=_csv, default=list(WORKLOADS),
                        help=",".join(WORKLOADS) + "; or scale alone (runs bench/scale.py)")
    parser.add_argument("--stores", type=_csv, default=list(STORES), help=",".join(STORES))
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default 3)")
    parser.add_argument("--no-baseline", action="store_true", help="do not add the baseline when --only omits it")
    parser.add_argument("--output", default=None, help="path prefix of the .json/.md/.png (default "
                        "bench/results/latest; with scale, bench/results/scale-MODE)")
    parser.add_argument("--offload-ref", default=None,
                        help="also measure offload as at this git ref (system offload@REF) for a before/after")
    opts = parser.parse_args(argv)
    opts.mode = opts.mode or "quick"
    if "scale" in opts.workloads:
        if len(opts.workloads) > 1 or opts.offload_ref:
            parser.error("the scale workload runs on its own (bench/scale.py): --workloads scale, no --offload-ref")
        return opts
    opts.output = opts.output or str(RESULTS / "latest")
    if opts.offload_ref:
        opts.before = add_offload_ref(opts.offload_ref)
        if opts.only is not None and "offload" in opts.only:
            opts.only.append(opts.before)
    for name, given, known in (("system", opts.only or [], SYSTEMS), ("workload", opts.workloads, WORKLOADS),
                               ("store", opts.stores, STORES)):
        unknown = [g for g in given if g not in known]
        if unknown:
            parser.error(f"unknown {name}(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return opts


def scale_argv(opts: argparse.Namespace) -> list[str]:
    """bench/scale.py's arguments for ``run.py --workloads scale`` (the options the two share)."""
    out = [f"--{opts.mode}", "--stores", ",".join(opts.stores)]
    if opts.only:
        out += ["--only", ",".join(opts.only)]
    if opts.repeats:
        out += ["--repeats", str(opts.repeats)]
    if opts.output:
        out += ["--output", opts.output]
    return out


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.workloads == ["scale"]:
        import scale

        return scale.main(scale_argv(opts))
    params = dict(MODES[opts.mode])
    repeats = opts.repeats or params.pop("repeats")
    params.pop("repeats", None)
    systems = opts.only or list(SYSTEMS)
    if not opts.no_baseline and BASELINE[0] not in systems and BASELINE[1] in opts.stores:
        systems = [*systems, BASELINE[0]]
    pairs = [(s, st) for s in SYSTEMS if s in systems for st in SYSTEMS[s][2] if st in opts.stores]
    workloads = [w for w in WORKLOADS if w in opts.workloads]
    run_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    workroot = WORK / run_id
    began = time.monotonic()
    load_start = loadavg()
    log(f"offload bench: {opts.mode}, {len(pairs)} system/store pairs, workloads {','.join(workloads)}, "
        f"{repeats} rounds; work dir {_show(workroot)}")
    # Other processes' load, before anything of ours runs and before each round (see bench/machine.py).
    machine_load: dict[str, Any] = {"before": other_load(), "rounds": [], "busy_limit": BUSY_LIMIT}
    log(f"machine before the run: {describe(machine_load['before'])}")

    log("venvs:")
    pythons: dict[str, Path] = {}
    install_errors: dict[str, str] = {}
    for system in dict.fromkeys(s for s, _ in pairs):
        venv = SYSTEMS[system][0]
        if venv in pythons or venv in install_errors:
            continue
        try:
            pythons[venv] = ensure_venv(venv)
        except (subprocess.CalledProcessError, OSError) as exc:
            install_errors[venv] = f"could not install {venv}: {exc}"
            log(f"  {install_errors[venv]}")

    # Verification: each pair runs a counting workload once; a pair that fails it is not timed.
    log("verification (each job appends a line; completion detection must be exact):")
    checks: dict[str, str] = {}
    peers: dict[str, Any] = {}
    servers: dict[str, str] = {}
    good_pairs = []
    for system, store in pairs:
        venv = SYSTEMS[system][0]
        if venv in install_errors:
            checks[f"{system}/{store}"] = install_errors[venv]
            continue
        if system in ONLY_WORKLOADS:
            good_pairs.append((system, store))  # no worker to verify; its enqueue cells count what they wrote
            continue
        result = run_cell(pythons[venv], system, store, "check", params["check"], params["budget"],
                          workroot / f"check-{system}-{store}")
        if result.get("ok"):
            checks[f"{system}/{store}"] = "ok"
            good_pairs.append((system, store))
            peers.setdefault(system, {"versions": result.get("versions", {}), "python": result.get("python")})
            servers.update(result.get("server", {}))
        else:
            checks[f"{system}/{store}"] = result.get("error", "?")
        log(f"  {system:14} {store:9} {checks[f'{system}/{store}'].splitlines()[0][:150]} ({result['cell_seconds']} s)")

    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for system, store in pairs:
        for workload in _workloads_of(system, workloads):
            cells[(system, store, workload)] = []
            if (system, store) not in good_pairs:
                cells[(system, store, workload)].append(
                    {"ok": False, "error": f"verification failed: {checks[f'{system}/{store}']}"})
    interrupted = False
    try:
        for round_no in range(1, repeats + 1):
            round_load = other_load()
            machine_load["rounds"].append(round_load)
            round_began = time.monotonic()
            log(f"round {round_no} of {repeats}: machine {describe(round_load)}")
            # Every other round in reverse order: a system measured first in each round would otherwise meet
            # the machine (and the database, just reset by the other system's last cell) in another state.
            for system, store in (good_pairs if round_no % 2 else list(reversed(good_pairs))):
                for workload in _workloads_of(system, workloads):
                    venv = SYSTEMS[system][0]
                    result = run_cell(pythons[venv], system, store, workload, params[workload], params["budget"],
                                      workroot / f"r{round_no}-{system}-{store}-{workload}",
                                      params["cap"].get(workload, 0.0))
                    result["round"] = round_no
                    cells[(system, store, workload)].append(result)
                    log(f"  {system:14} {store:9} {workload:8} {_short(result)} ({result['cell_seconds']} s)")
            log(f"  round {round_no} took {time.monotonic() - round_began:.0f} s")
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: writing the results measured so far")

    rows = summarize(cells)
    add_ratios(rows)
    duration = time.monotonic() - began
    report = {
        "meta": {
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "mode": opts.mode,
            "interrupted": interrupted,
            "argv": sys.argv[1:] if argv is None else argv,
            "repeats": repeats,
            "params": params,
            "baseline": list(BASELINE),
            "machine": machine_info(),
            "loadavg_start": load_start,
            "loadavg_end": loadavg(),
            "machine_load": machine_load,
            "duration_s": round(duration, 1),
            "peers": peers,
            "servers": servers,
            "checks": checks,
            "io_slots": 32,
            "concurrency": 2,
            "offload_source": offload_source(),
        },
        "metrics": [{"workload": w, "key": k, "title": t, "unit": u, "higher_is_better": h}
                    for w, k, t, u, h in METRICS],
        "cells": rows,
        "against_peers": against_peers(rows),
    }
    if opts.offload_ref:
        report["meta"]["before_after"] = {"before": opts.before, "ratios": before_after(rows, opts.before)}
    prefix = Path(opts.output)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path, png_path = (prefix.with_suffix(s) for s in (".json", ".md", ".png"))
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    write_markdown(report, md_path)
    if opts.offload_ref:
        _append_before_after(md_path, report["meta"]["before_after"])
    chart_error = write_chart(json_path, png_path)
    if chart_error:
        log(f"chart not written: {chart_error}")
    if interrupted:
        return 130
    log(f"done in {duration / 60:.1f} min: {_show(json_path)}, {_show(md_path)}"
        + ("" if chart_error else f", {_show(png_path)}"))
    if workroot.exists() and not any(workroot.iterdir()):
        workroot.rmdir()
    return 0


def _append_before_after(md_path: Path, comparison: dict[str, Any]) -> None:
    lines = ["", f"## offload against {comparison['before']} (same run: median after / median before)", "",
             "| store | workload | figure | before | after | after / before |", "|---|---|---|---|---|---|"]
    for r in comparison["ratios"]:
        lines.append(f"| {r['store']} | {r['workload']} | {r['key']} | {r['before']:,.4g} | {r['after']:,.4g} | "
                     f"{r['ratio']:.3f} |")
    with md_path.open("a") as out:
        out.write("\n".join(lines) + "\n")


def _workloads_of(system: str, workloads: list[str]) -> list[str]:
    return [w for w in workloads if w in ONLY_WORKLOADS.get(system, WORKLOADS)]


def _show(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _short(result: dict[str, Any]) -> str:
    if not result.get("ok"):
        return "ERROR " + result.get("error", "?").splitlines()[0][:160]
    parts = []
    if "jobs_per_s" in result:
        parts.append(f"{result['jobs_per_s']:,.0f} jobs/s")
    if result.get("bulk_jobs_per_s"):
        parts.append(f"bulk {result['bulk_jobs_per_s']:,.0f} jobs/s")
    if "p50_ms" in result:
        parts.append(f"p50 {result['p50_ms']:.1f} ms p99 {result['p99_ms']:.1f} ms")
    return ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
