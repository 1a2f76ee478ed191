"""What else the machine is doing, looked at before a benchmark times anything (standard library only).

On a 2-core VM a process spinning on one core changes every figure, and not uniformly: a round trip between two
processes costs ~20 us when the other core is busy and ~60 us when it is idle (waking a halted virtual CPU is
the expensive part), so systems that make many round trips per job gain the most. The load average shows such a
process only after a minute and does not say which one it is; this samples ``/proc`` over a second instead.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

#: Busy cores from other processes above which a run is flagged: a benchmark should start on an idle machine.
BUSY_LIMIT = 0.2
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_NOT_IDLE = ("on a small VM another process's load changes the cost of every round trip, so these figures do not "
             "compare with an idle machine's")


def _machine_ticks() -> tuple[int, int, int]:
    """(all, idle incl. iowait, steal) jiffies summed over the CPUs, from the first line of /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return total, fields[3] + fields[4], fields[7] if len(fields) > 7 else 0


def _process_ticks() -> dict[int, tuple[str, int]]:
    """pid -> (command name, utime + stime jiffies) of every process still readable."""
    out: dict[int, tuple[str, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name = text[text.find("(") + 1:text.rfind(")")]
        rest = text[text.rfind(")") + 2:].split()
        out[int(entry.name)] = (name, int(rest[11]) + int(rest[12]))
    return out


def other_load(seconds: float = 1.0) -> dict[str, Any]:
    """CPU use over ``seconds`` of the whole machine (in cores) and of the processes using the most of it,
    this process excluded. ``{}`` where there is no /proc."""
    try:
        machine0, procs0 = _machine_ticks(), _process_ticks()
        time.sleep(seconds)
        machine1, procs1 = _machine_ticks(), _process_ticks()
    except (OSError, ValueError, IndexError):
        return {}
    cores = os.cpu_count() or 1
    span = (machine1[0] - machine0[0]) or 1
    me = os.getpid()
    top = []
    for pid, (name, ticks) in procs1.items():
        before = procs0.get(pid)
        used = (ticks - before[1]) / _TICKS / seconds if before is not None else 0.0
        if pid != me and used >= 0.02:
            top.append({"pid": pid, "name": name, "cores": round(used, 2)})
    top.sort(key=lambda p: -p["cores"])
    return {
        "seconds": seconds,
        "busy_cores": round(cores * (span - (machine1[1] - machine0[1])) / span, 2),
        "steal_cores": round(cores * (machine1[2] - machine0[2]) / span, 2),
        "top": top[:5],
    }


def describe(load: dict[str, Any]) -> str:
    """One line: ``0.97 cores busy (bash 0.96)``, with a warning when that is above BUSY_LIMIT."""
    if not load:
        return "machine load unknown (no /proc)"
    text = f"{load['busy_cores']:.2f} cores busy"
    if load["top"]:
        text += " (" + ", ".join(f"{p['name']} {p['cores']:.2f}" for p in load["top"][:3]) + ")"
    if load.get("steal_cores"):
        text += f", {load['steal_cores']:.2f} stolen"
    if load["busy_cores"] > BUSY_LIMIT:
        text += f" - NOT IDLE: {_NOT_IDLE}"
    return text


def load_lines(load: dict[str, Any] | None) -> list[str]:
    """Report lines: what other processes used of the machine (``other_load``) before the run and before each
    round, and a warning when that was more than an idle machine's. [] for results from before this check."""
    if not load or not load.get("before"):
        return []
    samples = [load["before"], *load.get("rounds", [])]
    busiest = max(samples, key=lambda s: s.get("busy_cores", 0.0))
    rounds = " / ".join(f"{s['busy_cores']:.2f}" for s in load.get("rounds", []) if s)
    line = (f"CPU in use, sampled over 1 s with nothing of the benchmark running: {load['before']['busy_cores']:.2f} "
            f"cores before the run" + (f", {rounds} before each round" if rounds else "") + ".")
    if busiest.get("busy_cores", 0.0) > load.get("busy_limit", BUSY_LIMIT):
        who = ", ".join(f"{p['name']} (pid {p['pid']}) {p['cores']:.2f}" for p in busiest.get("top", [])[:3])
        line += f" **Not an idle machine** ({who or 'no single process'}): {_NOT_IDLE}."
    return [line, ""]
