"""Turn the cells' raw results into figures: medians, ratios to the baseline, and the Markdown table.
Used by run.py; standard library only."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from machine import load_lines

BASELINE = ("rq", "redis")
#: Not a system: each store's bare write (bench/peers/floor_bench.py); left out of "best peer".
FLOOR = "floor"

# (workload, key in the adapter's result, column title, unit, higher is better)
METRICS: list[tuple[str, str, str, str, bool]] = [
    ("drain", "jobs_per_s", "drain", "jobs/s", True),
    ("enqueue", "jobs_per_s", "enqueue", "jobs/s", True),
    ("enqueue", "bulk_jobs_per_s", "bulk enqueue", "jobs/s", True),
    ("latency", "p50_ms", "latency p50", "ms", False),
    ("latency", "p99_ms", "latency p99", "ms", False),
    ("io", "jobs_per_s", "io", "jobs/s", True),
]


# -- aggregation -----------------------------------------------------------------------------------------------
def summarize(cells: dict[tuple[str, str, str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for (system, store, workload), runs in cells.items():
        ok = [r for r in runs if r.get("ok")]
        row: dict[str, Any] = {"system": system, "store": store, "workload": workload, "runs": runs,
                               "ok_runs": len(ok), "median": {}}
        for metric_workload, key, *_ in METRICS:
            if metric_workload != workload:
                continue
            values = [r[key] for r in ok if r.get(key) is not None]
            if values:
                row["median"][key] = statistics.median(values)
        errors = [r.get("error", "?") for r in runs if not r.get("ok")]
        if errors:
            row["errors"] = errors
        capped = [r for r in ok if r.get("capped")]
        if capped:
            row["capped"] = [{"done": r.get("done", r.get("n")), "of": r.get("n"), "seconds": r.get("seconds")}
                             for r in capped]
        for r in ok:
            if "worker" in r:
                row["worker"] = r["worker"]
            if r.get("bulk_note"):
                row["bulk_note"] = r["bulk_note"]
        rows.append(row)
    return rows


def add_ratios(rows: list[dict[str, Any]]) -> None:
    base = {(r["workload"], key): value for r in rows if (r["system"], r["store"]) == BASELINE
            for key, value in r["median"].items()}
    for row in rows:
        row["ratio"] = {}
        for key, value in row["median"].items():
            ref = base.get((row["workload"], key))
            if ref:
                row["ratio"][key] = value / ref


# -- output ------------------------------------------------------------------------------------------------------
def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "ms":
        return f"{value:.1f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,.0f}"


NA, NOT_RUN, TIMES = "n/a", "\N{EN DASH}", "\N{MULTIPLICATION SIGN}"
CAPPED, FEW_SAMPLES = "\N{DAGGER}", "\N{DOUBLE DAGGER}"


def _header(meta: dict[str, Any]) -> list[str]:
    params = meta["params"]
    caps = params.get("cap") or {}
    sizes = (f"N: drain {params['drain']}, enqueue {params['enqueue']}, latency {params['latency']} samples, "
             f"io {params['io']}")
    if caps:
        sizes += "; caps: " + ", ".join(f"{w} {c} s" for w, c in caps.items())
    machine = meta["machine"]
    return [
        f"# offload and its peers, side by side ({meta['mode']} run)",
        "",
        f"{meta['date']} · {machine.get('cpu', '?')} · {machine['cores']} cores · {machine.get('memory_gib', '?')} GiB"
        f" · load average {meta['loadavg_start']} → {meta['loadavg_end']} · run took {meta['duration_s'] / 60:.1f} min"
        + (f" · offload {meta['offload_source']}" if meta.get("offload_source") else ""),
        "",
        f"Medians of {meta['repeats']} rounds. In brackets: ratio to the baseline, {BASELINE[0]} on {BASELINE[1]} "
        "(RQ's stock forking `rq worker`, CKAN's engine) measured in the same run: above 1 is faster for jobs/s "
        f"and slower for latency. {sizes}. Workload definitions: bench/README.md."
        + (" **Interrupted: not every round ran.**" if meta.get("interrupted") else ""),
        "",
        *load_lines(meta.get("machine_load")),
    ]


def _table_cell(row: dict[str, Any] | None, key: str, unit: str, is_baseline: bool, note: Any) -> str:
    if row is None:
        return NOT_RUN
    value = row["median"].get(key)
    errors = row.get("errors", [])
    where = f"{row['system']}/{row['store']} {row['workload']}"
    if value is None:
        if errors:
            return f"error [{note(f'{where}: {errors[0]}')}]"
        return NA if key == "bulk_jobs_per_s" else NOT_RUN
    text = _fmt(value, unit)
    ratio = row["ratio"].get(key)
    if ratio is not None and not is_baseline:
        text += f" ({ratio:.2f}{TIMES})"
    if row.get("capped") and key != "bulk_jobs_per_s":
        text += FEW_SAMPLES if row["workload"] == "latency" else CAPPED
    if errors:
        rounds = len(row["runs"])
        text += f" [{note(f'{where}: {len(errors)} of {rounds} rounds failed: {errors[0]}')}]"
    return text


def against_peers(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per store and metric: offload's median, the best peer's (the floor is no peer), offload's speed relative to
    it (above 1: offload is faster; for latency that is the peer's milliseconds over offload's), and for enqueue
    the floor's median and offload's share of it."""
    found = {(c["system"], c["store"], c["workload"]): c["median"] for c in cells}
    out = []
    for store in dict.fromkeys(c["store"] for c in cells if c["system"] == "offload"):
        for workload, key, title, unit, higher in METRICS:
            mine = found.get(("offload", store, workload), {}).get(key)
            if mine is None:
                continue
            peers = [(system, m[key]) for (system, st, w), m in found.items()
                     if st == store and w == workload and system not in ("offload", FLOOR)
                     and not system.startswith("offload@") and m.get(key)]
            best = (max if higher else min)(peers, key=lambda p: p[1]) if peers else None
            floor = found.get((FLOOR, store, workload), {}).get(key)
            out.append({
                "store": store, "metric": title, "unit": unit, "offload": mine,
                "best_peer": best[0] if best else None, "best_peer_value": best[1] if best else None,
                "speed_vs_best_peer": None if best is None else (mine / best[1] if higher else best[1] / mine),
                "floor": floor, "share_of_floor": None if not floor else mine / floor,
            })
    return out


def _against_peers(cells: list[dict[str, Any]]) -> list[str]:
    rows = against_peers(cells)
    if not rows:
        return []
    lines = ["", "## offload against the best peer on the same store", "",
             "Speed: offload's figure over the best peer's (for latency, the peer's over offload's): above 1, offload "
             "is ahead. Floor: the store's bare write, one record per round trip (bench/peers/floor_bench.py); a "
             "single enqueue that waits for its store cannot pass it.", "",
             "| store | metric | offload | best peer | speed | floor | offload / floor |",
             "|---|---|---:|---|---:|---:|---:|"]
    for r in rows:
        unit = r["unit"]
        peer = f"{r['best_peer']} {_fmt(r['best_peer_value'], unit)}" if r["best_peer"] else NOT_RUN
        speed = f"{r['speed_vs_best_peer']:.2f}{TIMES}" if r["speed_vs_best_peer"] is not None else NOT_RUN
        floor = _fmt(r["floor"], unit) if r["floor"] else ""
        share = f"{r['share_of_floor']:.2f}" if r["share_of_floor"] is not None else ""
        lines.append(f"| {r['store']} | {r['metric']} ({unit}) | {_fmt(r['offload'], unit)} | {peer} | {speed} "
                     f"| {floor} | {share} |")
    return lines


def write_markdown(report: dict[str, Any], path: Path) -> None:
    meta = report["meta"]
    rows = {(r["system"], r["store"], r["workload"]): r for r in report["cells"]}
    pairs = list(dict.fromkeys((r["system"], r["store"]) for r in report["cells"]))
    notes: list[str] = []

    def note(text: str) -> int:
        if text not in notes:
            notes.append(text)
        return notes.index(text) + 1

    lines = _header(meta)
    lines += ["| system | store | " + " | ".join(f"{title} ({unit})" for _, _, title, unit, _ in METRICS) + " |",
              "|---|---|" + "---:|" * len(METRICS)]
    for system, store in pairs:
        label = f"**{system}**" if system == "offload" else system
        if (system, store) == BASELINE:
            label += " (baseline)"
        cells = [_table_cell(rows.get((system, store, workload)), key, unit, (system, store) == BASELINE, note)
                 for workload, key, _title, unit, _ in METRICS]
        lines.append(f"| {label} | {store} | " + " | ".join(cells) + " |")
    caps = meta["params"].get("cap") or {}
    lines += ["", f"{NA}: the system has no bulk enqueue API. {NOT_RUN}: not run."]
    if caps:
        caps_text = ", ".join(f"{w} {c} s" for w, c in caps.items() if w != "latency")
        lines += ["", f"{CAPPED} In at least one round a cap ({caps_text}) ended the measurement before every job had "
                  "run (or been enqueued): the figure is jobs done / time so far (quick mode).",
                  "", f"{FEW_SAMPLES} Sampling stopped at the {caps.get('latency')} s cap with fewer samples than "
                  "asked for (see the JSON for how many)."]
    if notes:
        lines += ["", "Errors:", ""]
        lines += [f"{i}. {text.strip().splitlines()[0][:400]}" for i, text in enumerate(notes, 1)]
    lines += _against_peers(report["cells"])
    lines += ["", "## How each system ran", "", "| system | store | drain / latency worker | io worker |",
              "|---|---|---|---|"]
    for system, store in pairs:
        if system == FLOOR:
            continue
        drain = (rows.get((system, store, "drain")) or rows.get((system, store, "latency")) or {}).get("worker", "")
        io = (rows.get((system, store, "io")) or {}).get("worker", "")
        lines.append(f"| {system} | {store} | {drain} | {io} |")
    lines += ["", "## Versions", ""]
    for system, info in meta["peers"].items():
        versions = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items())
        lines.append(f"- {system}: {versions} (Python {info.get('python', '?')})")
    if meta["servers"]:
        lines.append("- servers: " + ", ".join(f"{k} {v}" for k, v in meta["servers"].items()))
    lines.append("")
    checks = meta.get("checks", {})
    if checks:
        failed = {k: v.splitlines()[0][:200] for k, v in checks.items() if v != "ok"}
        verdict = "." if not failed else "; failed: " + "; ".join(f"{k}: {v}" for k, v in failed.items())
        lines += [f"Verification (each job runs exactly once, completion detection exact; {meta['params']['check']} "
                  f"jobs each): {len(checks) - len(failed)} of {len(checks)} system/store pairs passed{verdict}", ""]
    path.write_text("\n".join(lines))


