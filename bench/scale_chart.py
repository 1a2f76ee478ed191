"""Draw the scale benchmark's chart from its JSON (run by bench/scale.py in the bench-tools venv, with matplotlib).

    bench/.venvs/tools/bin/python bench/scale_chart.py bench/results/scale-quick.json bench/results/scale-quick.png

Left: jobs/s (steady window) against worker processes, a line per system and store. Right: the store server's
CPU time per job against worker processes (Redis and PostgreSQL; SQLite has no server). Log scales.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

OFFLOAD_COLORS = {"sqlite": "#1b5e20", "redis": "#43a047", "postgres": "#81c784"}
PEER_COLORS = {"rq": "#555555", "rq-simple": "#888888", "celery": "#d62728", "dramatiq": "#ff7f0e",
               "huey": "#9467bd", "saq": "#1f77b4", "procrastinate": "#8c564b"}
STORE_STYLES = {"sqlite": ":", "redis": "-", "postgres": "--"}
STORE_MARKERS = {"sqlite": "s", "redis": "o", "postgres": "^"}


def main(src: str, dst: str) -> None:
    with open(src) as f:
        report: dict[str, Any] = json.load(f)
    rows = report["rows"]
    pairs = list(dict.fromkeys((r["system"], r["store"]) for r in rows))
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6.2))
    for system, store in pairs:
        mine = sorted((r for r in rows if (r["system"], r["store"]) == (system, store)), key=lambda r: r["workers"])
        color = OFFLOAD_COLORS.get(store) if system == "offload" else PEER_COLORS.get(system, "#17becf")
        style = {"color": color, "linestyle": STORE_STYLES.get(store, "-"), "marker": STORE_MARKERS.get(store, "o"),
                 "linewidth": 2.4 if system == "offload" else 1.4, "label": f"{system} ({store})"}
        for ax, key in ((left, "jobs_per_s"), (right, "cpu_per_job_us")):
            points = [(r["workers"], r["median"][key]) for r in mine if r["median"].get(key)]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, **style)
    workers = report["meta"]["workers"]
    for ax, title, unit in ((left, "jobs/s once every worker runs", "jobs/s"),
                            (right, "store server CPU per job (Redis, PostgreSQL)",
                             "microseconds of server CPU per job")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(workers)
        ax.set_xticklabels([str(k) for k in workers])
        ax.set_xlabel("worker processes (one job slot each)")
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=10)
        ax.grid(which="both", alpha=0.25)
    handles, labels = left.get_legend_handles_labels()
    right.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    meta = report["meta"]
    p = meta["params"]
    fig.suptitle(f"offload and peers, K workers on one store ({meta['mode']} run, {meta.get('date', '?')}): "
                 f"{p['jobs']:,} jobs{', cap ' + format(p['cap'], 'g') + ' s' if p['cap'] else ''}, "
                 f"medians of {meta['repeats']} round(s), {meta['machine'].get('cores')} cores", fontsize=10)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
