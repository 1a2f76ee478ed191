"""The fault battery at full size: every scenario of tests/faults/scenarios.py on SQLite, Redis and PostgreSQL.

    .venv/bin/python bench/faults.py            # the sizes of the issue (about 15 minutes on 2 cores)
    .venv/bin/python bench/faults.py --quick    # smaller sizes (about 6 minutes)
    .venv/bin/python bench/faults.py --only kill-storm,poison --engines redis

Writes ``bench/results/faults.json`` (every result with its figures, the sizes, the machine and the versions),
``bench/results/faults.md`` (the table scenario x engine and the details) and ``bench/results/faults.png``
(the kill storms' progress with the kills marked, and the recovery times). Every store runs on a private
server started for the run (tests/servers.py: Redis and PostgreSQL binaries on this machine), so the battery
can kill and restart it; nothing else on the machine is touched.

``--chart JSON PNG`` only draws the figure (run by the bench's tools venv, which has matplotlib).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TOOLS_PYTHON = ROOT / "bench" / ".venvs" / "tools" / "bin" / "python"
ENGINES = ("sqlite", "redis", "postgresql")
SCENARIOS = ("kill-storm", "store-restart", "poison", "timeouts", "fencing", "graceful", "bad-input", "corrupt",
             "kill-storm-default", "dead-worker-same-host", "dead-worker-other-host", "paused-worker", "kill-once")

FULL: dict[str, Any] = {
    "kill-storm": {"sqlite": {"jobs": 20_000}, "redis": {"jobs": 50_000}, "postgresql": {"jobs": 50_000}},
    "store-restart": {"produce": 5.0, "down": 5.0, "after": 5.0, "backlog": 5000},
    "poison": {"healthy": 6000},
    "liveness": {"runs": 5},
    # Jobs of 50 ms, so that the drain lasts (about 40 s on 8 executors) and kills land on running jobs.
    "kill-storm-default": {"jobs": 6000, "job_seconds": 0.05},
}
QUICK: dict[str, Any] = {
    "kill-storm": {e: {"jobs": 5000} for e in ENGINES},
    "store-restart": {"produce": 2.0, "down": 2.0, "after": 2.0, "backlog": 1000},
    "poison": {"healthy": 2000},
    "liveness": {"runs": 3},
    "kill-storm-default": {"jobs": 2000, "job_seconds": 0.05},
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- running ---------------------------------------------------------------------------------------------------
def run_one(name: str, engine: str, sizes: dict[str, Any], servers: Any, workdir: Path, seed: int | None
            ) -> list[dict[str, Any]]:
    from tests.faults import scenarios
    from tests.faults.doors import bad_input

    if name == "kill-storm":
        return [scenarios.kill_storm(engine, servers, workdir, seed=seed, **sizes["kill-storm"][engine])]
    if name == "kill-storm-default":  # issue 21: no lease tuning, recovery p99 <= 10 s
        result = scenarios.kill_storm(engine, servers, workdir, seed=seed, lease=None, recovery_mark=10.0,
                                      **sizes["kill-storm-default"])
        return [{**result, "mode": "default settings"}]
    if name == "kill-once":  # issue 21's side-by-side with the peers: one worker killed at 3 s, a fresh one at once
        result = scenarios.kill_storm(engine, servers, workdir, seed=seed, jobs=300, job_seconds=0.2, workers=1,
                                      concurrency=1, kill_every=3.0, max_kills=1, lease=None, recovery_mark=10.0)
        return [{**result, "mode": "300 jobs of 0.2 s, killed at 3 s, a fresh worker at once"}]
    if name in ("dead-worker-same-host", "dead-worker-other-host", "paused-worker"):
        return [repeated(name, engine, sizes["liveness"]["runs"], servers, workdir)]
    if name == "store-restart":
        out = []
        for mode in scenarios.RESTART_MODES[engine]:
            sub = workdir / mode
            sub.mkdir()
            out.append(scenarios.store_restart(engine, servers, sub, mode=mode, **sizes["store-restart"]))
        return out
    if name == "poison":
        return [scenarios.poison(engine, servers, workdir, **sizes["poison"])]
    if name == "timeouts":
        return [scenarios.timeouts(engine, servers, workdir)]
    if name == "fencing":
        return [scenarios.fencing(engine, servers, workdir)]
    if name == "graceful":
        return [scenarios.graceful(engine, servers, workdir)]
    if name == "bad-input":
        return [bad_input(engine, servers, workdir)]
    if name == "corrupt":
        return [scenarios.corrupt_records(engine, servers, workdir)]
    raise ValueError(name)


def repeated(name: str, engine: str, runs: int, servers: Any, workdir: Path) -> dict[str, Any]:
    """A dead-worker scenario (tests/faults/liveness.py) ``runs`` times: one result, its re-run delays' median as
    recovery p50 and their maximum as p99, failed if any run failed."""
    import statistics

    from tests.faults import liveness

    results = []
    for n in range(runs):
        sub = workdir / str(n)
        sub.mkdir()
        if name == "paused-worker":
            results.append(liveness.paused_worker(engine, servers, sub))
        else:
            results.append(liveness.dead_worker(engine, servers, sub, other_host=name.endswith("other-host")))
    delays = [r["rerun_delay"] for r in results if r.get("rerun_delay") is not None]
    return {
        **results[0],
        "jobs": runs,
        **{k: sum(r.get(k, 0) for r in results) for k in ("executions", "lost", "duplicates")},
        "requeued_by": sorted({str(r.get("requeued_by")) for r in results}),
        "rerun_delays": delays,
        "recovery_p50": statistics.median(delays) if delays else None,
        "recovery_p99": max(delays) if delays else None,
        "reasons": [f"run {n}: {reason}" for n, r in enumerate(results) for reason in r["reasons"]],
        "verdict": "fail" if any(r["verdict"] != "pass" for r in results) else "pass",
    }


def machine() -> dict[str, Any]:
    def first_line(cmd: list[str]) -> str | None:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return None

    cpu = None
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    pg = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    from offload import __version__

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_before": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "redis": first_line(["redis-server", "--version"]),
        "postgresql": first_line([str(pg[0]), "--version"]) if pg else None,
        "offload": __version__,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    from tests.faults.harness import Servers

    sizes = QUICK if args.quick else FULL
    root = Path(tempfile.mkdtemp(prefix="offload-faults-"))
    servers = Servers(root)
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": args.quick,
                              "sizes": sizes, "machine": machine(), "command": " ".join(sys.argv), "results": []}
    began = time.monotonic()
    try:
        for name in args.only:
            for engine in args.engines:
                workdir = root / f"{name}-{engine}"
                workdir.mkdir()
                log(f"{name} on {engine} ...")
                t = time.monotonic()
                try:
                    results = run_one(name, engine, sizes, servers, workdir, args.seed)
                except Exception as exc:  # a scenario that could not run is a failed cell, not a lost run
                    results = [{"scenario": name, "engine": engine, "verdict": "error",
                                "reasons": [f"{type(exc).__name__}: {exc}"], "traceback": traceback.format_exc()}]
                for result in results:
                    result["seconds"] = round(time.monotonic() - t, 1)
                    report["results"].append(result)
                    log(f"  {result.get('mode', '')} {result['verdict']}: " + "; ".join(result.get("reasons", [])))
    finally:
        servers.cleanup()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    report["seconds"] = round(time.monotonic() - began, 1)
    report["machine"]["load_after"] = os.getloadavg()
    return report


# -- the report ------------------------------------------------------------------------------------------------
def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def row_name(result: dict[str, Any]) -> str:
    mode = result.get("mode")
    return f"{result['scenario']} ({mode})" if mode else str(result["scenario"])


def table(report: dict[str, Any]) -> str:
    lines = ["| scenario | engine | jobs | executions | lost | duplicates | in flight on killed "
             "| recovery p50 / p99 (s) | verdict |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in report["results"]:
        lost = _num(r.get("lost"))
        if r.get("documented_loss"):
            lost += " (documented: no persistence)"
        recovery = f"{_num(r.get('recovery_p50'))} / {_num(r.get('recovery_p99'))}"
        if recovery == "- / -":
            recovery = "-"
        verdict = "**pass**" if r["verdict"] == "pass" else f"**{r['verdict'].upper()}**"
        lines.append(f"| {row_name(r)} | {r['engine']} | {_num(r.get('jobs'))} | {_num(r.get('executions'))} | {lost} "
                     f"| {_num(r.get('duplicates'))} | {_num(r.get('in_flight_on_killed'))} | {recovery} | {verdict} |")
    return "\n".join(lines)


def details(report: dict[str, Any]) -> str:
    out: list[str] = []
    for r in report["results"]:
        head = f"### {row_name(r)}, {r['engine']} ({r.get('seconds', '?')} s)"
        body: list[str] = []
        s = r["scenario"]
        if r["verdict"] == "error":  # the scenario could not run to its end: no figures to show
            body.append("error: " + "; ".join(r.get("reasons", [])))
        elif s == "kill storm":
            body.append(f"{r['kills']} kills; drained in {r['drain_seconds']} s; {r['interrupted']} execution(s) cut "
                        f"short and {r['ended_unsettled']} that ended but whose result died with the worker (in "
                        f"flight {r['in_flight_on_killed']}); duplicates {r['duplicates']}, unexplained "
                        f"{r['unexplained_duplicates']}; recovery (kill to re-run) max {_num(r.get('recovery_max'))} s "
                        f"with a {r['lease']:g} s lease; final store counts {r['final_counts']}; seed {r['seed']}.")
        elif s == "store restart":
            body.append(f"lost {r['lost']} of {r['jobs']} acknowledged (before the fault {r['lost_before_fault']}, "
                        f"after recovery {r['lost_after_recovery']}); duplicates {r['duplicates']}; workers resumed "
                        f"after {r['resume_seconds']} s" + (f"; integrity_check {r['integrity_check']}"
                                                             if "integrity_check" in r else "") + ".")
        elif s == "poison jobs":
            body.append(f"healthy throughput {r['poisoned_throughput']}/s vs {r['clean_throughput']}/s clean "
                        f"({r['throughput_ratio']:.0%}); executor replaced after {r['replacement_seconds']} s.")
            body += [f"- {name}: {p['executions']} run(s), {p['state']}: {p['error']}"
                     for name, p in r["poisons"].items()]
        elif s == "timeouts":
            body += [f"- {name}: {o}" for name, o in r["overruns"].items()]
        elif s == "fencing":
            body.append(f"late result rejected {r.get('rejected_after_resume')} s after SIGCONT; stored "
                        f"{r['store_outcome']}.")
        elif s.startswith("dead worker") or s == "paused worker":
            body.append(f"{r['jobs']} runs, default settings (30 s lease); lost attempt requeued by "
                        f"{', '.join(r['requeued_by'])}; re-run delays (kill or SIGSTOP to the second start) "
                        f"{r['rerun_delays']} s, median {_num(r.get('recovery_p50'))} s"
                        + (f", mark {r['mark']:g} s" if "mark" in r else f"; resumed after {r['pause']:g} s, the "
                           "late result rejected") + ".")
        elif s == "graceful shutdown":
            body += [f"- {name}: {c}" for name, c in r["cases"].items()]
        elif s == "bad input":
            body.append(f"{r['cases']} cases: {r['doors']}.")
        elif s == "corrupted records":
            body += [f"- {name}: {c['state']} after {c['attempts']} attempt(s): {c['error'][:160]}"
                     for name, c in r["records"].items()]
        for reason in r.get("reasons", []):
            body.append(f"- **fail**: {reason}")
        out.append(head + "\n\n" + "\n".join(body))
    return "\n\n".join(out)


def markdown(report: dict[str, Any], png: str | None) -> str:
    m = report["machine"]
    sizes = "quick" if report["quick"] else "full (the sizes of the issue)"
    text = [
        "# Fault battery: results",
        "",
        f"Run {report['started']}, {sizes}, {report['seconds'] / 60:.1f} minutes: `{report['command']}`.",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; load {m['load_before']} before, "
        f"{m.get('load_after')} after. Python {m['python']}, SQLite {m['sqlite']}, {m['redis']}, {m['postgresql']}.",
        "",
        "Every figure is computed from the ledger the job bodies write (one SQLite row per execution), not from "
        "offload's own view. *lost*: acknowledged jobs with no completed execution. *duplicates*: jobs with more "
        "than one. *in flight on killed*: jobs a SIGKILLed worker was running, or had run without its result "
        "reaching the store. *recovery*: kill storm, kill to re-run; store restart, store back to the first job "
        "run per worker; poison, crash to the first job of the new executor; timeouts, kill to the next job.",
        "",
        table(report),
        "",
    ]
    if png:
        text += [f"![kill storms and recovery times]({png})", ""]
    text += ["## Details", "", details(report), ""]
    return "\n".join(text)


# -- the figure ------------------------------------------------------------------------------------------------
def chart(src: Path, dst: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = json.loads(src.read_text())
    storms = [r for r in report["results"] if r["scenario"] == "kill storm" and r.get("timeline")]
    if not storms:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    colors = {"sqlite": "#1b5e20", "redis": "#c62828", "postgresql": "#1565c0"}
    for r in storms:
        xs, ys = zip(*r["timeline"], strict=True)
        color = colors.get(r["engine"], "grey")
        left.plot(xs, ys, label=f"{r['engine']} ({r['jobs']:,} jobs)", color=color)
        for _, _, at in r["kill_log"]:
            left.axvline(at, color=color, alpha=0.25, linewidth=0.8)
    left.set_xlabel("seconds since the workers started (faint lines: SIGKILLs)")
    left.set_ylabel("executions run to their end")
    left.set_title("Kill storm: a random worker SIGKILLed every 2 s")
    left.legend()
    data = [r["recovery"] or [float("nan")] for r in storms]
    right.boxplot(data, tick_labels=[r["engine"] for r in storms], whis=(1, 99))
    for i, r in enumerate(storms, start=1):
        if not r["recovery"]:
            right.text(i, 0.5, "no job in flight\nat a kill", ha="center", fontsize=8)
    lease = storms[0]["lease"]
    right.axhline(lease + 5, color="black", linestyle="--", linewidth=1)
    right.text(0.55, lease + 4.8, f"pass mark: lease + 5 s = {lease + 5:g} s", fontsize=8, va="top")
    right.set_ylabel("seconds from the kill to the job's re-run")
    right.set_title("Recovery (whiskers: p1-p99)")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


def draw(json_path: Path, png_path: Path) -> str | None:
    python = TOOLS_PYTHON if TOOLS_PYTHON.exists() else Path(sys.executable)
    proc = subprocess.run([str(python), __file__, "--chart", str(json_path), str(png_path)], capture_output=True,
                          text=True, timeout=300)
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"scenarios, of {', '.join(SCENARIOS)}")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--output", default=str(RESULTS / "faults"), help="PREFIX of PREFIX.json/.md/.png")
    parser.add_argument("--seed", type=int, help="the kill storm's random seed")
    parser.add_argument("--keep", action="store_true", help="keep the work directories (ledgers, worker logs)")
    parser.add_argument("--chart", nargs=2, metavar=("JSON", "PNG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.chart:
        chart(Path(args.chart[0]), Path(args.chart[1]))
        return 0
    args.only = [s for s in args.only.split(",") if s]
    args.engines = [e for e in args.engines.split(",") if e]
    unknown = (set(args.only) - set(SCENARIOS)) | (set(args.engines) - set(ENGINES))
    if unknown:
        parser.error(f"unknown scenario or engine: {', '.join(sorted(unknown))}")
    report = run(args)
    prefix = Path(args.output)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    json_path, png_path, md_path = (prefix.with_suffix(s) for s in (".json", ".png", ".md"))
    json_path.write_text(json.dumps(report, indent=1, default=str))
    problem = draw(json_path, png_path)
    if problem:
        log(f"figure not drawn: {problem}")
    md_path.write_text(markdown(report, None if problem else png_path.name))
    failed = [r for r in report["results"] if r["verdict"] != "pass"]
    log(f"{len(report['results']) - len(failed)} of {len(report['results'])} passed in {report['seconds']:.0f} s; "
        f"{md_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
