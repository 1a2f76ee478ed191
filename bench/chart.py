"""Draw bench/results/latest.png from latest.json (run by run.py in the bench-tools venv, with matplotlib).

    bench/.venvs/tools/bin/python bench/chart.py bench/results/latest.json bench/results/latest.png

One grouped bar chart: a group per workload, a bar per system/store, the height its speed relative to the
baseline measured in the same run (throughput / baseline throughput; for latency baseline p50 / p50), so
higher is better everywhere and the baseline is 1. Log scale.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

GROUPS = [("drain", "jobs_per_s"), ("enqueue", "jobs_per_s"), ("enqueue", "bulk_jobs_per_s"),
          ("latency", "p50_ms"), ("io", "jobs_per_s")]
# offload in greens (one per store); each peer a hue of its own, dark for its first store, light for the second.
OFFLOAD_COLORS = {"sqlite": "#1b5e20", "redis": "#43a047", "postgres": "#a5d6a7"}
PEER_HUES = {"rq": 14, "rq-simple": 10, "celery": 0, "dramatiq": 2, "huey": 8, "saq": 6, "arq": 16,
             "procrastinate": 18}


def _label(workload: str, key: str) -> str:
    if key == "bulk_jobs_per_s":
        return "bulk enqueue"
    if key == "p50_ms":
        return "latency (p50)"
    return workload


def main(src: str, dst: str) -> None:
    with open(src) as f:
        report: dict[str, Any] = json.load(f)
    cells = {(c["system"], c["store"], c["workload"]): c for c in report["cells"]}
    # The floor (a store's bare write, enqueue only) is in the Markdown table, not here: it is no system.
    pairs = list(dict.fromkeys((c["system"], c["store"]) for c in report["cells"] if c["system"] != "floor"))
    base = tuple(report["meta"]["baseline"])
    groups = [g for g in GROUPS if any(g[0] == c["workload"] for c in report["cells"])]

    palette = plt.get_cmap("tab20").colors
    colors, seen = {}, {}
    for system, store in pairs:
        if system == "offload":
            colors[(system, store)] = OFFLOAD_COLORS.get(store, "#2e7d32")
            continue
        shade = seen.setdefault(system, 0)
        seen[system] += 1
        colors[(system, store)] = palette[(PEER_HUES.get(system, 12) + min(shade, 1)) % 20]
    colors[base] = "#444444"

    width = 0.8 / max(1, len(pairs))
    fig, ax = plt.subplots(figsize=(max(10, 2.4 * len(groups)), 6.2))
    for i, pair in enumerate(pairs):
        xs, ys = [], []
        for g, (workload, key) in enumerate(groups):
            cell = cells.get((*pair, workload))
            ratio = cell and cell.get("ratio", {}).get(key)
            if not ratio:
                continue
            xs.append(g - 0.4 + (i + 0.5) * width)
            ys.append(1 / ratio if key.endswith("_ms") else ratio)
        hatch = "//" if pair[0] == "offload" else None
        ax.bar(xs, ys, width * 0.95, label=f"{pair[0]} ({pair[1]})", color=colors[pair], hatch=hatch,
               edgecolor="white" if hatch else None, linewidth=0)
    ax.axhline(1.0, color="#333333", linewidth=0.8, linestyle="--")
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([_label(w, k) for w, k in groups])
    ax.set_ylabel(f"relative to {base[0]} on {base[1]} (higher is better)")
    meta = report["meta"]
    ax.set_title(f"offload and peers, {meta['mode']} run, {meta['date']}: medians of {meta['repeats']} rounds, "
                 f"{meta['machine'].get('cores')} cores", fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.25)
    ax.legend(fontsize=8, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
