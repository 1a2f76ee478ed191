"""Periodic jobs: cron expressions (croniter) and fixed intervals, enqueued once per due slot.

A *slot* is a moment a schedule is due: a cron match, or a multiple of the interval counted from the Unix
epoch (so every scheduler computes the same slots). Any number of schedulers may run (every worker has one
unless started with ``--without-scheduler``); the store's ``enqueue_periodic`` records the last slot per
schedule and enqueues atomically, so each slot yields exactly one job.

Missed slots: a scheduler only ever enqueues the latest slot that is due. If every worker was down across
several slots, the schedule runs once when they come back, not once per missed slot. A schedule the store has
never run does not fire for a slot more than ``FIRST_RUN_WINDOW`` seconds in the past, so adding
``0 3 * * *`` at noon waits for 03:00 instead of running at once.

Declared in code::

    offload.periodic("nightly-report", cron="0 3 * * *", task="reports.nightly")
    offload.periodic("sync", every=timedelta(minutes=15), func="myapp.sync:run", queue="sync")

or in the ini file, one section per schedule::

    [offload.schedule.nightly-report]
    cron = 0 3 * * *
    timezone = Europe/Berlin
    task = reports.nightly
    args = [1, 2]
"""

from __future__ import annotations

import configparser
import datetime as dt
import json
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from offload import funcs
from offload.config import parse_duration
from offload.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from offload.app import Offload
    from offload.jobs import Job

log = logging.getLogger("offload")

FIRST_RUN_WINDOW = 60.0


def _croniter() -> Any:
    """croniter, imported on first use: it costs tens of milliseconds, and most processes never need it."""
    from croniter import croniter

    return croniter
_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


@dataclass
class Schedule:
    """A periodic job definition. Exactly one of ``cron``/``every`` and one of ``func``/``task``."""

    name: str
    cron: str | None = None
    every: float | None = None
    func: str | None = None
    task: str | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    timeout: float | None = None
    timezone: str = "UTC"
    source: str = "code"

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.name):
            raise ValueError(f"invalid schedule name {self.name!r}: use letters, digits, '_', '-', '.', ':'")
        if (self.cron is None) == (self.every is None):
            raise ValueError(f"schedule {self.name!r}: give exactly one of cron= or every=")
        if (self.func is None) == (self.task is None):
            raise ValueError(f"schedule {self.name!r}: give exactly one of func= or task=")
        if self.cron is not None and not _croniter().is_valid(self.cron):
            raise ValueError(f"schedule {self.name!r}: {self.cron!r} is not a valid cron expression")
        if self.every is not None and not (math.isfinite(self.every) and self.every >= 1):
            raise ValueError(f"schedule {self.name!r}: every= must be at least 1 second")
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # here: only a worker with schedules needs it

        try:
            self.zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"schedule {self.name!r}: unknown time zone {self.timezone!r}") from None
        if self.func is not None:
            self.func = funcs.func_path(self.func)

    @property
    def spec(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron}" + (f" ({self.timezone})" if self.timezone != "UTC" else "")
        return f"every {self.every:g} s"

    @property
    def target(self) -> str:
        return self.task or self.func or ""

    def latest_slot(self, now: float) -> float:
        """The latest due moment at or before ``now``."""
        if self.every is not None:
            return math.floor(now / self.every) * self.every
        assert self.cron is not None
        start = dt.datetime.fromtimestamp(now, self.zone)
        # croniter's get_prev is strict; nudge so that a slot exactly at ``now`` counts as due.
        return float(_croniter()(self.cron, start + dt.timedelta(microseconds=1)).get_prev(float))

    def next_slot(self, now: float) -> float:
        """The first due moment after ``now``."""
        if self.every is not None:
            return (math.floor(now / self.every) + 1) * self.every
        assert self.cron is not None
        return float(_croniter()(self.cron, dt.datetime.fromtimestamp(now, self.zone)).get_next(float))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "cron": self.cron, "every": self.every, "func": self.func, "task": self.task,
            "args": self.args, "kwargs": self.kwargs, "queue": self.queue, "timeout": self.timeout,
            "timezone": self.timezone, "source": self.source,
        }


_schedules: dict[str, Schedule] = {}


def periodic(
    name: str,
    *,
    cron: str | None = None,
    every: float | dt.timedelta | None = None,
    func: Callable[..., Any] | str | None = None,
    task: str | None = None,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    queue: str | None = None,
    timeout: float | None = None,
    timezone: str = "UTC",
) -> Schedule:
    """Declare a periodic job (call at import time of a module the workers import)."""
    seconds = every.total_seconds() if isinstance(every, dt.timedelta) else every
    path = funcs.func_path(func) if func is not None else None
    schedule = Schedule(name, cron, seconds, path, task, list(args or []), dict(kwargs or {}), queue, timeout,
                        timezone, source="code")
    _schedules[name] = schedule
    return schedule


def registered() -> dict[str, Schedule]:
    return dict(_schedules)


def load_ini(path: str | Path) -> list[Schedule]:
    """Schedules from ``[offload.schedule.NAME]`` sections of an ini file."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path, encoding="utf-8")
    found = []
    for section in parser.sections():
        if not section.startswith("offload.schedule."):
            continue
        name = section[len("offload.schedule."):]
        values = dict(parser.items(section))
        known = {"cron", "every", "func", "task", "args", "kwargs", "queue", "timeout", "timezone"}
        unknown = set(values) - known
        where = f"{path} [{section}]"
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        try:
            args = json.loads(values["args"]) if "args" in values else []
            kwargs = json.loads(values["kwargs"]) if "kwargs" in values else {}
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise ValueError("args must be a JSON array and kwargs a JSON object")
            schedule = Schedule(
                name,
                cron=values.get("cron"),
                every=parse_duration(values["every"]) if "every" in values else None,
                func=values.get("func"),
                task=values.get("task"),
                args=args,
                kwargs=kwargs,
                queue=values.get("queue"),
                timeout=float(values["timeout"]) if "timeout" in values else None,
                timezone=values.get("timezone", "UTC"),
                source=str(path),
            )
        except (ValueError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        except Exception as exc:  # an unimportable func= and the like
            raise ConfigError(f"{where}: {exc}") from None
        found.append(schedule)
    return found


def all_schedules(app: Offload) -> dict[str, Schedule]:
    """Schedules declared in code (imported task modules) and in the app's ini file."""
    found = registered()
    if app.config.path is not None:
        for schedule in load_ini(app.config.path):
            found[schedule.name] = schedule
    return found


DISABLED_KIND = "offload.schedule.disabled"
ENABLED_KIND = "offload.schedule.enabled"


def disable(app: Offload, name: str, by: str = "") -> None:
    """Stop a schedule enqueueing (in every worker, from its next tick) until it is enabled again."""
    app.store.put_record(DISABLED_KIND, _check_name(name), {"at": time.time(), "by": by})


def enable(app: Offload, name: str, now: float | None = None) -> bool:
    """Enable a disabled schedule; it runs from its next slot (the slots missed meanwhile are not caught up).
    False if it was not disabled."""
    if not app.store.delete_record(DISABLED_KIND, _check_name(name)):
        return False
    app.store.put_record(ENABLED_KIND, name, {"at": time.time() if now is None else now})
    return True


def disabled(app: Offload) -> set[str]:
    return {name for name, _ in app.store.list_records(DISABLED_KIND)}


def _check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"invalid schedule name {name!r}")
    return name


class Scheduler:
    """Enqueues due slots; called by the worker's supervisor loop via ``tick()``."""

    def __init__(self, app: Offload, schedules: dict[str, Schedule]) -> None:
        self.app = app
        self.schedules = schedules
        self.known: dict[str, float] = {}
        self.next_check = 0.0
        self.loaded = False

    def tick(self, now: float | None = None) -> float:
        """Enqueue what is due; return when to call again (epoch seconds)."""
        now = time.time() if now is None else now
        if not self.schedules:
            return now + 3600.0
        if not self.loaded:
            self.known = {n: r.last_slot for n, r in self.app.store.schedule_runs().items()}
            self.loaded = True
        off = disabled(self.app)
        enabled_at = {name: float(data.get("at", 0)) for name, data in self.app.store.list_records(ENABLED_KIND)}
        for schedule in self.schedules.values():
            if schedule.name in off:
                continue
            slot = schedule.latest_slot(now)
            if slot < enabled_at.get(schedule.name, 0.0):
                continue  # missed while disabled: not caught up
            last = self.known.get(schedule.name)
            if last is not None and slot <= last:
                continue
            if last is None and slot < now - FIRST_RUN_WINDOW:
                continue
            self._enqueue(schedule, slot, now)
        return min(s.next_slot(now) for s in self.schedules.values())

    def _enqueue(self, schedule: Schedule, slot: float, now: float) -> None:
        job = schedule_job(self.app, schedule, now, slot)
        if self.app.store.enqueue_periodic(schedule.name, slot, job, now):
            log.info("Periodic %s: enqueued job %s for %s", schedule.name, job.id,
                     dt.datetime.fromtimestamp(slot, dt.timezone.utc).isoformat())
        self.known[schedule.name] = max(slot, self.known.get(schedule.name, slot))


def schedule_job(app: Offload, schedule: Schedule, now: float, slot: float | None = None) -> Job:
    """The job a schedule enqueues for ``slot`` (None: run now, outside the slots, from the dashboard or API)."""
    meta: dict[str, Any] = {"schedule": schedule.name, "slot": slot}
    if slot is None:
        meta = {"schedule": schedule.name, "run_now": True}
    options: dict[str, Any] = {"title": f"{schedule.name} (periodic)", "meta": meta}
    if schedule.queue:
        options["queue"] = schedule.queue
    if schedule.timeout is not None:
        options["timeout"] = schedule.timeout
    if schedule.task is not None:
        return app.build_job(None, schedule.args, schedule.kwargs, task=schedule.task, now=now, **options)
    return app.build_job(schedule.func, schedule.args, schedule.kwargs, now=now, **options)


def run_now(app: Offload, name: str) -> Job:
    """Enqueue one run of schedule ``name`` now, besides its slots (the next slot still runs as usual)."""
    schedule = all_schedules(app).get(name)
    if schedule is None:
        raise KeyError(f"there is no periodic schedule named {name!r}")
    now = time.time()
    return app.store.enqueue(schedule_job(app, schedule, now), now)
