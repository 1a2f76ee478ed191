"""The scale benchmark's figures: medians over rounds per (system, store, workers), offload against the best peer
on each store, and the Markdown report. Used by bench/scale.py; standard library only."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from machine import load_lines

#: (key in a row's median, where it is in a cell's result). "steady" figures come from the window in which every
#: worker was running (bench/peers/_scale.py).
FIGURES: dict[str, tuple[str, ...]] = {
    "drain_jobs_per_s": ("jobs_per_s",),
    "jobs_per_s": ("steady", "jobs_per_s"),
    "cpu_per_job_us": ("steady", "cpu_per_job_us"),
    "drain_cpu_per_job_us": ("drain", "cpu_per_job_us"),
    "segments_per_job": ("steady", "segments_per_job"),
    "reads_per_job": ("steady", "reads_per_job"),
    "commands_per_job": ("steady", "commands_per_job"),
    "gap_p50_us": ("steady", "gap_p50_us"),
    "gap_p99_us": ("steady", "gap_p99_us"),
    "window_jobs": ("steady", "jobs"),
    "first_progress_s": ("first_progress_s",),
    "last_worker_first_job_s": ("last_worker_first_job_s",),
    "record_call_us": ("record_call_us",),
}
#: Redis's own read count and the kernel's segment count may differ by this share (and this much per job) before
#: the report says so.
AGREEMENT = 0.05
AGREEMENT_PER_JOB = 0.05
#: As bench/peers/_serverstats.py's: a server above this when a cell began was not idle.
QUIET_CORES = 0.05
NA, NOT_RUN, CAPPED = "n/a", "\N{EN DASH}", "\N{DAGGER}"
NO_SERVER = "SQLite has no server: its work is done inside the worker processes, so there is no server CPU and no " \
            "round trip to count"


def _get(result: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = result
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def round_trips(median: dict[str, float], store: str) -> float | None:
    """Round trips per job: on Redis the server's own count of reads (it also sees connections that opened and
    closed between two snapshots, as RQ's forked work horses' do), elsewhere the kernel's segment count."""
    if store == "redis" and median.get("reads_per_job") is not None:
        return median["reads_per_job"]
    return median.get("segments_per_job")


def summarize(cells: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for key, runs in cells.items():
        system, store, workers = key.rsplit("/", 2)
        ok = [r for r in runs if r.get("ok")]
        row: dict[str, Any] = {"system": system, "store": store, "workers": int(workers), "rounds": len(runs),
                               "ok_runs": len(ok), "median": {}}
        for name, path in FIGURES.items():
            values = [v for r in ok if (v := _get(r, path)) is not None]
            if values:
                row["median"][name] = statistics.median(values)
        trips = round_trips(row["median"], store)
        if trips is not None:
            row["median"]["round_trips_per_job"] = trips
        if row["median"].get("cpu_per_job_us"):
            row["median"]["jobs_per_store_core"] = 1e6 / row["median"]["cpu_per_job_us"]
        errors = [r.get("error", "?") for r in runs if not r.get("ok")]
        if errors:
            row["errors"] = errors
        row["capped"] = sum(1 for r in ok if r.get("capped"))
        notes = sorted({r["bookkeeping"] for r in ok if r.get("bookkeeping")})
        notes += sorted({r["steady"]["start"] for r in ok
                         if not r.get("steady", {}).get("start", "every worker").startswith("every worker")})
        notes += sorted({r["steady"]["note"] for r in ok if r.get("steady", {}).get("note")})
        busy = [r["server"]["server_cores_before"] for r in ok
                if r.get("server", {}).get("server_cores_before", 0.0) > QUIET_CORES]
        if busy:
            notes.append(f"the server still used {max(busy):.2f} of a core when the cell began (after waiting 60 s)")
        lost = max((r.get("steady", {}).get("connections_lost", 0) for r in ok), default=0)
        if lost:
            notes.append(f"{lost} connection(s) closed within the window (not in the kernel's segment count)")
        if notes:
            row["notes"] = notes
        for r in ok:
            row["worker"] = r.get("worker")
        rows.append(row)
    return rows


def against_best_peer(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per store and worker count: offload's server CPU per job and the lowest peer's; offload's share of it."""
    out = []
    by = {(r["system"], r["store"], r["workers"]): r["median"] for r in rows}
    for (system, store, workers), median in by.items():
        if system != "offload" or median.get("cpu_per_job_us") is None:
            continue
        peers = [(s, m["cpu_per_job_us"]) for (s, st, k), m in by.items()
                 if not s.startswith("offload") and st == store and k == workers and m.get("cpu_per_job_us")]
        if not peers:
            continue
        best = min(peers, key=lambda p: p[1])
        out.append({"store": store, "workers": workers, "offload_us": median["cpu_per_job_us"], "best_peer": best[0],
                    "best_peer_us": best[1], "share": median["cpu_per_job_us"] / best[1]})
    return out


def before_after(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """offload (the working tree) over offload@REF (``--offload-ref``) per store and worker count, same run."""
    by = {(r["system"], r["store"], r["workers"]): r["median"] for r in rows}
    out = []
    for (system, store, workers), old in by.items():
        if not system.startswith("offload@"):
            continue
        new = by.get(("offload", store, workers), {})
        ratios = {key: new[key] / old[key] for key in ("jobs_per_s", "cpu_per_job_us", "round_trips_per_job")
                  if new.get(key) and old.get(key)}
        if ratios:
            out.append({"before": system, "store": store, "workers": workers, "ratio": ratios})
    return out


# -- Markdown ------------------------------------------------------------------------------------------------
def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return NOT_RUN
    return f"{value:,.{digits}f}"


def _ms(us: float | None) -> str:
    if us is None:
        return NOT_RUN
    ms = us / 1000
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 100 else f"{ms:,.0f}"


def _header(meta: dict[str, Any]) -> list[str]:
    p = meta["params"]
    machine = meta["machine"]
    lines = [f"# How far one store carries: K worker processes on one store ({meta['mode']} run)", ""]
    if meta["mode"] != "full":
        lines += [f"**Preliminary** ({meta['mode']} run: {p['jobs']:,} jobs per cell, steady windows capped at "
                  f"{p['cap']:g} s, "
                  f"{meta['repeats']} round(s)). Server CPU and round trips per job hold up on a busy machine far "
                  "better than jobs/s do; see the caveats in bench/README.md.", ""]
    lines += [
        f"{meta.get('date', '?')} · {machine.get('cpu', '?')} · {machine.get('cores')} cores · "
        f"{machine.get('memory_gib', '?')} GiB · load average {meta.get('loadavg_start')} → "
        f"{meta.get('loadavg_end')} · "
        f"run took {meta.get('duration_s', 0) / 60:.1f} min · offload {meta.get('offload_source', '?')}",
        "",
        f"Backlog {p['jobs']:,} no-op jobs per cell, filled before the workers start; worker processes "
        f"{', '.join(str(k) for k in meta['workers'])}, started together, one job slot each; "
        f"{'steady windows capped at ' + format(p['cap'], 'g') + ' s' if p['cap'] else 'no cap'}; medians of "
        f"{meta['repeats']} "
        "round(s). Servers: " + "; ".join(f"{k} {v}" for k, v in meta.get("servers", {}).items()) + ".",
        "",
        *load_lines(meta.get("machine_load")),
    ]
    if meta.get("interrupted"):
        lines += ["**Interrupted: not every cell ran.**", ""]
    return lines


def _summary(rows: list[dict[str, Any]], workers: list[int], notes: list[str], cap_text: str) -> list[str]:
    pairs = list(dict.fromkeys((r["system"], r["store"]) for r in rows))
    by = {(r["system"], r["store"], r["workers"]): r for r in rows}
    low, top = min(workers), max(workers)
    lines = [
        "## Summary",
        "",
        f"jobs/s once every worker runs (the steady window); server CPU per job at {low} and {top} workers, the other "
        f"server figures at {top} (every worker count is in the details below). Jobs/s per store core = 1 / server "
        "CPU per job.",
        "",
        "| system | store | " + " | ".join(f"jobs/s, {k} w" for k in workers)
        + f" | server CPU/job, {low} / {top} w (us) | round trips/job | gap p50 / p99, {low} w (ms) "
        f"| gap p50 / p99, {top} w (ms) | jobs/s per store core |",
        "|---|---|" + "---:|" * (len(workers) + 5),
    ]
    for system, store in pairs:
        label = f"**{system}**" if system == "offload" else system
        cells = []
        for k in workers:
            row = by.get((system, store, k))
            cells.append(_cell(row, "jobs_per_s", notes))
        last = by.get((system, store, top), {"median": {}})
        first = by.get((system, store, low), {"median": {}})
        m = last["median"]
        if store == "sqlite":
            server = [NA, NA]
            per_core = NA
        else:
            cpu = f"{_num(first['median'].get('cpu_per_job_us'))} / {_num(m.get('cpu_per_job_us'))}"
            server = [cpu, _num(m.get("round_trips_per_job"), 2)]
            per_core = _num(m.get("jobs_per_store_core"))
        gaps = [f"{_ms(r['median'].get('gap_p50_us'))} / {_ms(r['median'].get('gap_p99_us'))}" for r in (first, last)]
        lines.append(f"| {label} | {store} | " + " | ".join(cells) + f" | {' | '.join(server)} | {' | '.join(gaps)} "
                     f"| {per_core} |")
    lines += ["", f"{NA}: {NO_SERVER}."]
    if any(r.get("capped") for r in rows):
        lines += ["", f"{CAPPED} The steady window ended at the cap ({cap_text}): the figures are over the jobs run in "
                  "it (how many: the details below)."]
    return lines


def _cell(row: dict[str, Any] | None, key: str, notes: list[str]) -> str:
    if row is None:
        return NOT_RUN
    value = row["median"].get(key)
    text = _num(value) if value is not None else "error" if row.get("errors") else NOT_RUN
    if row.get("capped") and value is not None:
        text += CAPPED
    for note in [*row.get("errors", [])[:1], *row.get("notes", [])]:
        first = note.strip().splitlines()[0][:300]
        if first not in notes:
            notes.append(first)
        text += f" [{notes.index(first) + 1}]"
    return text


def _against(rows: list[dict[str, Any]]) -> list[str]:
    found = against_best_peer(rows)
    if not found:
        return []
    lines = ["", "## offload's server CPU per job against the best peer's on the same store", "",
             "The issue's goal: offload's share at most 1/3 (0.33).", "",
             "| store | workers | offload (us/job) | best peer (us/job) | offload's share |",
             "|---|---:|---:|---|---:|"]
    for r in sorted(found, key=lambda r: (r["store"], r["workers"])):
        lines.append(f"| {r['store']} | {r['workers']} | {_num(r['offload_us'])} | {r['best_peer']} "
                     f"{_num(r['best_peer_us'])} | {r['share']:.2f} |")
    return lines


def _before_after(rows: list[dict[str, Any]]) -> list[str]:
    found = before_after(rows)
    if not found:
        return []
    lines = ["", f"## offload against {found[0]['before']} (the working tree's median over the ref's, same run)", "",
             "| store | workers | jobs/s | server CPU/job | round trips/job |", "|---|---:|---:|---:|---:|"]
    for r in sorted(found, key=lambda r: (r["store"], r["workers"])):
        cells = [f"{r['ratio'][k]:.2f}" if k in r["ratio"] else NOT_RUN
                 for k in ("jobs_per_s", "cpu_per_job_us", "round_trips_per_job")]
        lines.append(f"| {r['store']} | {r['workers']} | " + " | ".join(cells) + " |")
    return lines


def _details(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["", "## Every cell", "",
             "drain: from spawning the workers to the system reporting nothing left (or the cap), start-up included; "
             "steady: from the moment every worker had run a job to 90 % of the backlog (or the cap). Server CPU, "
             "segments (the kernel's count of request segments from the workers' connections), Redis's own reads and "
             "commands, and the gaps are per job in the steady window; drain CPU/job is over the whole drain.", "",
             "| system | store | workers | drain jobs/s | steady jobs/s | jobs in the window | server CPU/job (us) "
             "| drain CPU/job (us) "
             "| segments/job | Redis reads/job | Redis commands/job | gap p50 (ms) | gap p99 (ms) "
             "| last worker's first job (s) |", "|---|---|---:|" + "---:|" * 11]
    for r in rows:
        m = r["median"]
        lines.append(
            f"| {r['system']} | {r['store']} | {r['workers']} | {_num(m.get('drain_jobs_per_s'))} "
            f"| {_num(m.get('jobs_per_s'))}{CAPPED if r.get('capped') else ''} | {_num(m.get('window_jobs'))} "
            f"| {_num(m.get('cpu_per_job_us'))} | {_num(m.get('drain_cpu_per_job_us'))} "
            f"| {_num(m.get('segments_per_job'), 2)} | {_num(m.get('reads_per_job'), 2)} "
            f"| {_num(m.get('commands_per_job'), 2)} | {_ms(m.get('gap_p50_us'))} | {_ms(m.get('gap_p99_us'))} "
            f"| {_num(m.get('last_worker_first_job_s'), 2)} |")
    disagree = [r for r in rows if r["store"] == "redis" and r["median"].get("reads_per_job")
                and r["median"].get("segments_per_job") is not None
                and abs(r["median"]["segments_per_job"] / r["median"]["reads_per_job"] - 1) > AGREEMENT
                and abs(r["median"]["segments_per_job"] - r["median"]["reads_per_job"]) > AGREEMENT_PER_JOB]
    lines += ["", "Round trips per job in the summary: on Redis the server's own count of reads "
              "(`INFO` `total_reads_processed`; nothing but the workers talks to the private server in the window), "
              "on PostgreSQL the kernel's count of data segments the server received from the workers' connections "
              "(`ss -ti` `data_segs_in`)."]
    if disagree:
        lines.append("The two counts differ by more than " + f"{AGREEMENT:.0%} for: " + ", ".join(
            f"{r['system']} at {r['workers']} workers ({r['median']['segments_per_job']:.2f} segments, "
            f"{r['median']['reads_per_job']:.2f} reads)" for r in disagree)
                     + ". Connections opened and closed between the two snapshots are not in the kernel's count.")
    else:
        lines.append(f"On Redis the two agree within {AGREEMENT:.0%} (or {AGREEMENT_PER_JOB} per job) in every cell.")
    return lines


def write_markdown(report: dict[str, Any], path: Path, png_name: str | None = None) -> None:
    meta, rows = report["meta"], report["rows"]
    notes: list[str] = []
    cap = meta["params"].get("cap")
    cap_text = f"{cap:g} s after it began" if cap else "none"
    lines = _header(meta) + _summary(rows, meta["workers"], notes, cap_text)
    if notes:
        lines += ["", "Notes:", ""] + [f"{i}. {text}" for i, text in enumerate(notes, 1)]
    if png_name:
        lines += ["", f"![jobs/s against worker processes]({png_name})"]
    lines += _against(rows) + _before_after(rows) + _details(rows)
    lines += ["", "## How each system ran", "", "| system | store | workers (each) |", "|---|---|---|"]
    for system, store in dict.fromkeys((r["system"], r["store"]) for r in rows):
        worker = next((r.get("worker") for r in rows if (r["system"], r["store"]) == (system, store)
                       and r.get("worker")), None)
        lines.append(f"| {system} | {store} | {(worker or NOT_RUN).split(' x ', 1)[-1]} |")
    calls = [r["median"]["record_call_us"] for r in rows if r["median"].get("record_call_us")]
    if calls:
        lines += ["", f"The job body (`_jobbodies.record`: two clock reads and one O_APPEND write of its line) costs "
                  f"{min(calls):.1f}-{max(calls):.1f} us per call, measured in each cell's producer process."]
    lines += ["", "## Versions", ""]
    for system, info in meta.get("peers", {}).items():
        versions = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items())
        lines.append(f"- {system}: {versions} (Python {info.get('python', '?')})")
    checks = meta.get("checks", {})
    if checks:
        failed = {k: v.splitlines()[0][:200] for k, v in checks.items() if v != "ok"}
        verdict = "." if not failed else "; failed: " + "; ".join(f"{k}: {v}" for k, v in failed.items())
        lines += ["", f"Verification before timing (bench/run.py's check workload, {meta['params']['check']} jobs, "
                  f"on the private servers): {len(checks) - len(failed)} of {len(checks)} pairs passed{verdict}"]
    lines.append("")
    path.write_text("\n".join(lines))
