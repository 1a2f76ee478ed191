"""How far one store carries: K worker processes (1, 2, 4, 8, 16) of one job slot each drain one backlog of no-op
jobs on one SQLite file, one Redis, one PostgreSQL, for offload and the peers that scale by processes.

    python bench/scale.py --quick        # ~15-20 minutes on 2 cores: 10,000 jobs, windows capped at 8 s, 1 round
    python bench/scale.py --full         # 50,000 jobs, windows capped at 60 s, 3 rounds (see bench/README.md)
    python bench/scale.py --quick --only offload,huey --stores redis --workers 1,16
    python bench/scale.py --rebuild bench/results/scale-quick.json    # redo the .md and .png from the raw runs

Per cell (system, store, K): jobs/s, the store server's CPU time per job, the requests (round trips) per job, the
gap between one job's end and the next job's start in a worker (claim latency, p50/p99) and, from the CPU per
job, how many jobs/s one core of the store server carries. The measurement itself is the ``scale`` workload of
the side-by-side harness (bench/peers/_scale.py, run by each system's adapter in its own venv); this script runs
the store servers (private ones, so that nothing else touches what is measured), the venvs (bench/run.py's),
the verification, the rounds and the report (bench/scale_report.py, bench/scale_chart.py).

Standard library only: runs with any Python 3.10+.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import run
from machine import BUSY_LIMIT, describe, other_load
from scale_report import summarize, write_markdown
from scale_servers import PrivatePostgres, PrivateRedis

#: The systems that scale by adding worker processes, each on the stores it has in the harness (the table's
#: order). arq is left out: its worker has no one-job-at-a-time mode (max_jobs is a poll batch, bench/README.md).
SYSTEMS: dict[str, tuple[str, ...]] = {
    "offload": ("sqlite", "redis", "postgres"),
    "rq": ("redis",),
    "celery": ("redis",),
    "dramatiq": ("redis",),
    "huey": ("redis", "sqlite"),
    "saq": ("redis", "postgres"),
    "procrastinate": ("postgres",),
}
#: Also available with --only (not in the default set).
OPTIONAL = {"rq-simple": ("redis",)}
WORKERS = (1, 2, 4, 8, 16)

MODES: dict[str, dict[str, Any]] = {
    "quick": {"jobs": 10_000, "cap": 8.0, "repeats": 1, "budget": 150.0, "check": 50},
    "full": {"jobs": 50_000, "cap": 60.0, "repeats": 3, "budget": 900.0, "check": 200},
}
RESULTS = run.RESULTS
log = run.log


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="offload and its peers: K worker processes on one store.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", const="quick", dest="mode",
                      help="10,000 jobs, steady windows capped at 8 s, 1 round (default)")
    mode.add_argument("--full", action="store_const", const="full", dest="mode",
                      help="50,000 jobs, steady windows capped at 60 s, 3 rounds")
    parser.add_argument("--only", type=run._csv, default=None,
                        help=f"systems: {','.join(SYSTEMS)} (default all), also {','.join(OPTIONAL)}")
    parser.add_argument("--stores", type=run._csv, default=list(run.STORES), help=",".join(run.STORES))
    parser.add_argument("--workers", type=run._csv, default=[str(k) for k in WORKERS],
                        help="worker process counts (default 1,2,4,8,16)")
    parser.add_argument("--jobs", type=int, default=None, help="backlog size (overrides the mode's)")
    parser.add_argument("--cap", type=float, default=None,
                        help="longest steady window, and longest wait for every worker to start, in seconds (0: none)")
    parser.add_argument("--repeats", type=int, default=None, help="rounds")
    parser.add_argument("--output", default=None,
                        help="path prefix of .json/.md/.png (default bench/results/scale-MODE)")
    parser.add_argument("--offload-ref", default=None,
                        help="also measure offload as at this git ref (system offload@REF), for a before/after")
    parser.add_argument("--rebuild", metavar="JSON", help="only rewrite the .md and .png of an existing results file")
    opts = parser.parse_args(argv)
    opts.mode = opts.mode or "quick"
    known = {**SYSTEMS, **OPTIONAL}
    for name, given, allowed in (("system", opts.only or [], known), ("store", opts.stores, run.STORES)):
        unknown = [g for g in given if g not in allowed]
        if unknown:
            parser.error(f"unknown {name}(s): {', '.join(unknown)}; known: {', '.join(allowed)}")
    try:
        opts.workers = [int(k) for k in opts.workers]
    except ValueError:
        parser.error(f"--workers takes whole numbers separated by commas, not {','.join(opts.workers)}")
    if not opts.workers or any(k < 1 or k > 64 for k in opts.workers):
        parser.error("--workers: each count must be between 1 and 64")
    return opts


def pairs_of(opts: argparse.Namespace) -> list[tuple[str, str]]:
    known = {**SYSTEMS, **OPTIONAL}
    chosen = opts.only or list(SYSTEMS)
    if opts.offload_ref and "offload" in chosen:
        # run.py's offload@REF: the same adapter and venv, offload's src/ as at REF ahead on the path.
        name = run.add_offload_ref(opts.offload_ref)
        known = {"offload": known["offload"], name: known["offload"], **known}
        chosen = [*chosen, name]
    return [(s, st) for s in known if s in chosen for st in known[s] if st in opts.stores]


class Servers:
    """The private servers a run needs; their URLs go to every cell through the environment."""

    def __init__(self, stores: set[str], root: Path) -> None:
        self.redis = PrivateRedis(root) if "redis" in stores else None
        self.postgres = PrivatePostgres(root) if "postgres" in stores else None
        if self.redis:
            os.environ["BENCH_REDIS_URL"] = self.redis.url
        if self.postgres:
            os.environ["BENCH_PG_DSN"] = self.postgres.dsn

    def describe(self) -> dict[str, str]:
        out = {}
        if self.redis:
            out["redis"] = f"{self.redis.version()} (private, port {self.redis.port}, no RDB snapshots, no AOF)"
        if self.postgres:
            out["postgres"] = (f"{self.postgres.version()} (private, port {self.postgres.port}, initdb defaults: "
                               f"fsync, synchronous_commit and autovacuum on; max_connections 400)")
        return out

    def stop(self) -> None:
        for server in (self.redis, self.postgres):
            if server is not None:
                server.stop()


def _verify(pairs: list[tuple[str, str]], pythons: dict[str, Path], params: dict[str, Any], workroot: Path,
            checks: dict[str, str], peers: dict[str, Any]) -> list[tuple[str, str]]:
    """bench/run.py's check workload on the private servers: every job once, completion detection exact."""
    good = []
    for system, store in pairs:
        venv = run.SYSTEMS[system][0]
        if venv not in pythons:
            checks[f"{system}/{store}"] = f"venv {venv} could not be installed"
            continue
        result = run.run_cell(pythons[venv], system, store, "check", params["check"], params["budget"],
                              workroot / f"check-{system}-{store}")
        checks[f"{system}/{store}"] = "ok" if result.get("ok") else result.get("error", "?")
        if result.get("ok"):
            good.append((system, store))
            peers.setdefault(system, {"versions": result.get("versions", {}), "python": result.get("python")})
        log(f"  {system:14} {store:9} {checks[f'{system}/{store}'].splitlines()[0][:150]} ({result['cell_seconds']} s)")
    return good


def _short(result: dict[str, Any]) -> str:
    if not result.get("ok"):
        return "ERROR " + result.get("error", "?").splitlines()[0][:160]
    steady = result.get("steady", {})
    parts = [f"{result['jobs_per_s']:,.0f} jobs/s", f"steady {steady.get('jobs_per_s', 0):,.0f}"]
    if steady.get("cpu_per_job_us") is not None:
        parts.append(f"server {steady['cpu_per_job_us']:,.0f} us/job")
    trips = steady.get("reads_per_job", steady.get("segments_per_job"))
    if trips is not None:
        parts.append(f"{trips:.2f} round trips/job")
    if steady.get("gap_p99_us") is not None:
        parts.append(f"gap p50/p99 {steady['gap_p50_us'] / 1000:.2f}/{steady['gap_p99_us'] / 1000:.2f} ms")
    if result.get("capped"):
        parts.append(f"capped at {result['done']:,} jobs")
    if result.get("bookkeeping"):
        parts.append("BOOKKEEPING: " + result["bookkeeping"][:120])
    return ", ".join(parts)


def measure(opts: argparse.Namespace) -> dict[str, Any]:
    params = dict(MODES[opts.mode])
    if opts.jobs:
        params["jobs"] = opts.jobs
    if opts.cap is not None:
        params["cap"] = opts.cap
    repeats = opts.repeats or params["repeats"]
    pairs = pairs_of(opts)
    run_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    workroot = run.WORK / f"scale-{run_id}"
    began = time.monotonic()
    log(f"offload scale bench: {opts.mode}, {len(pairs)} system/store pairs x workers {opts.workers}, "
        f"{params['jobs']:,} jobs, cap {params['cap']:g} s, {repeats} round(s); work dir {run._show(workroot)}")
    machine_load: dict[str, Any] = {"before": other_load(), "rounds": [], "busy_limit": BUSY_LIMIT}
    log(f"machine before the run: {describe(machine_load['before'])}")
    meta: dict[str, Any] = {"mode": opts.mode, "argv": sys.argv[1:], "params": params, "repeats": repeats,
                            "workers": opts.workers, "machine": run.machine_info(), "loadavg_start": run.loadavg(),
                            "machine_load": machine_load, "offload_source": run.offload_source()}
    servers = Servers({store for _, store in pairs}, workroot / "servers")
    cells: dict[str, list[dict[str, Any]]] = {}
    try:
        meta["servers"] = servers.describe()
        meta["servers"]["sqlite"] = _sqlite_version()
        log("venvs:")
        pythons: dict[str, Path] = {}
        for venv in dict.fromkeys(run.SYSTEMS[s][0] for s, _ in pairs):
            try:
                pythons[venv] = run.ensure_venv(venv)
            except (subprocess.CalledProcessError, OSError) as exc:
                log(f"  could not install {venv}: {exc}")
        log("verification (run.py's check workload, on the private servers):")
        checks: dict[str, str] = {}
        peers: dict[str, Any] = {}
        good = _verify(pairs, pythons, params, workroot, checks, peers)
        meta.update(checks=checks, peers=peers)
        for system, store in pairs:
            for k in opts.workers:
                cells[f"{system}/{store}/{k}"] = [] if (system, store) in good else [
                    {"ok": False, "error": f"verification failed: {checks[f'{system}/{store}']}"}]
        _rounds(good, opts.workers, pythons, params, repeats, workroot, cells, machine_load)
    except KeyboardInterrupt:
        meta["interrupted"] = True
        log("interrupted: writing the results measured so far")
    finally:
        servers.stop()
    meta.update(duration_s=round(time.monotonic() - began, 1), loadavg_end=run.loadavg(),
                date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    if workroot.exists():
        shutil.rmtree(workroot / "servers", ignore_errors=True)
        if not any(workroot.iterdir()):
            workroot.rmdir()
    return {"meta": meta, "cells": cells}


def _rounds(good: list[tuple[str, str]], workers: list[int], pythons: dict[str, Path], params: dict[str, Any],
            repeats: int, workroot: Path, cells: dict[str, list[dict[str, Any]]], machine_load: dict[str, Any]) -> None:
    for round_no in range(1, repeats + 1):
        load = other_load()
        machine_load["rounds"].append(load)
        round_began = time.monotonic()
        log(f"round {round_no} of {repeats}: machine {describe(load)}")
        # Every other round in reverse order, as in run.py: no system is always the first (or last) of a round.
        for system, store in (good if round_no % 2 else list(reversed(good))):
            for k in workers:
                python = pythons[run.SYSTEMS[system][0]]
                result = run.run_cell(python, system, store, "scale", params["jobs"], params["budget"],
                                      workroot / f"r{round_no}-{system}-{store}-{k}", params["cap"],
                                      extra=("--workers", str(k)))
                result["round"] = round_no
                cells[f"{system}/{store}/{k}"].append(result)
                log(f"  {system:14} {store:9} {k:2} workers: {_short(result)} ({result['cell_seconds']} s)")
        log(f"  round {round_no} took {time.monotonic() - round_began:.0f} s")


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def write_outputs(report: dict[str, Any], prefix: Path) -> None:
    report["rows"] = summarize(report["cells"])
    prefix.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path, png_path = (prefix.with_suffix(s) for s in (".json", ".md", ".png"))
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    write_markdown(report, md_path, png_path.name)
    error = _chart(json_path, png_path)
    log(f"wrote {run._show(json_path)}, {run._show(md_path)}" + (f"; chart not written: {error}" if error else
                                                                     f", {run._show(png_path)}"))


def _chart(json_path: Path, png_path: Path) -> str | None:
    try:
        python = run.ensure_venv("tools")
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"could not install the chart tools: {exc}"
    proc = subprocess.run([str(python), str(run.BENCH / "scale_chart.py"), str(json_path), str(png_path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    return None


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.rebuild:
        source = Path(opts.rebuild)
        report = json.loads(source.read_text())
        write_outputs(report, Path(opts.output) if opts.output else source.with_suffix(""))
        return 0
    report = measure(opts)
    write_outputs(report, Path(opts.output) if opts.output else RESULTS / f"scale-{opts.mode}")
    log(f"done in {report['meta']['duration_s'] / 60:.1f} min")
    return 130 if report["meta"].get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
