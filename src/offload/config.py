"""Settings and where they come from.

One resolution order everywhere: explicit overrides (CLI flags, keyword arguments), then the environment
(``offload.a.b`` is ``OFFLOAD_A_B``), then the ini file (section ``[offload]``), then the defaults below.
The ini file is the one passed explicitly (``-c offload.ini``) or named by ``OFFLOAD_CONFIG``.
In the ini file a key may be written in full (``offload.store = ...``) or without the prefix (``store = ...``).
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from offload.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

NO_LIMIT = -1.0


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{text!r} is not a boolean (use true or false)")


def parse_list(text: str) -> list[str]:
    return [item.strip() for item in re.split(r"[,\n]", text) if item.strip()]


_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``1.5``, ``30s``, ``15m``, ``12h``, ``7d`` or ``2w``."""
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if not match:
        raise ValueError(f"{text!r} is not a duration (examples: 90, 30s, 15m, 12h, 7d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_int(text: str) -> int:
    return int(text.strip())


def parse_str(text: str) -> str:
    return text.strip()


@dataclass(frozen=True)
class Setting:
    key: str
    parse: Callable[[str], Any]
    default: Any
    help: str

    @property
    def env(self) -> str:
        return self.key.upper().replace(".", "_")


SETTINGS: dict[str, Setting] = {
    s.key: s
    for s in [
        Setting("offload.store", parse_str, "sqlite:///offload.db", "store URL (sqlite://, redis://, postgresql://)"),
        Setting("offload.site_id", parse_str, "default", "site id; queue names are stored as <site_id>:<queue>"),
        Setting("offload.jobs.timeout", parse_duration, 180.0, "default job time limit in seconds (-1: none)"),
        Setting("offload.jobs.timeout_grace", parse_duration, 5.0,
                "after JobTimeout is raised in a job at its time limit, seconds before it is killed (0: killed "
                "at the limit, no exception)"),
        Setting("offload.jobs.keep", parse_duration, 7 * 86400.0, "how long finished/failed jobs stay visible"),
        Setting("offload.jobs.max_attempts", parse_int, 3, "default attempts per job, the first included"),
        Setting("offload.jobs.sync", parse_bool, False, "run jobs inline at enqueue (tests, development)"),
        Setting("offload.worker.concurrency", parse_int, 1, "executor child processes per worker"),
        Setting("offload.worker.lease", parse_duration, 30.0, "lease length; extended while a job runs"),
        Setting("offload.worker.grace", parse_duration, 60.0, "warm shutdown: how long running jobs may finish"),
        Setting("offload.worker.dead_after", parse_duration, 10.0,
                "a worker silent this long is dead: its running jobs go back to their queues (at most this long "
                "after its last heartbeat), without waiting for their lease"),
        Setting("offload.worker.host_id", parse_str, "",
                "which host a worker says it is on (empty: this machine's boot id and PID namespace); workers with "
                "the same one check each other's PIDs and reap a worker whose process is gone at once"),
        Setting("offload.worker.max_jobs_per_child", parse_int, 0, "recycle a child after N jobs (0: never)"),
        Setting("offload.worker.max_memory_per_child", parse_int, 0, "recycle a child above N MiB RSS (0: never)"),
        Setting("offload.log.level", parse_str, "INFO", "log level of the offload logger in workers"),
        Setting("offload.api.tokens", parse_list, [], "API tokens as token:role (roles: admin, read)"),
        Setting("offload.tasks.imports", parse_list, [], "modules to import for their tasks"),
        Setting("offload.webhooks.allowed_hosts", parse_list, [], "internal hosts webhooks may deliver to"),
        Setting("offload.web.secret", parse_str, "",
                "key signing dashboard session cookies (empty: random per process, so sessions end at restart)"),
        Setting("offload.consumers", parse_list, [], "consumer classes to register, as pkg.mod:Class"),
        Setting("offload.webhooks.timeout", parse_duration, 10.0, "webhook request time limit per phase"),
        Setting("offload.webhooks.max_attempts", parse_int, 12, "attempts per webhook delivery, the first included"),
        Setting("offload.webhooks.retry_delay", parse_duration, 30.0, "first webhook retry delay (then doubles)"),
        Setting("offload.webhooks.max_retry_delay", parse_duration, 6 * 3600.0, "longest webhook retry delay"),
        Setting("offload.webhooks.disable_after", parse_int, 50,
                "disable a webhook after N consecutive failed deliveries (0: never)"),
        Setting("offload.webhooks.disable_after_time", parse_duration, 3 * 86400.0,
                "disable a webhook failing without a success for this long (0: never)"),
        Setting("offload.webhooks.log_size", parse_int, 100, "delivery attempts kept per webhook"),
    ]
}


def _canonical(key: str) -> str:
    key = key.strip().lower()
    return key if key.startswith("offload.") else f"offload.{key}"


class Config(Mapping[str, Any]):
    """Resolved settings; ``source(key)`` tells where a value came from."""

    def __init__(self, values: dict[str, Any], sources: dict[str, str], path: Path | None = None) -> None:
        self._values = values
        self._sources = sources
        self.path = path

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Config:
        environ = os.environ if environ is None else environ
        if path is None and environ.get("OFFLOAD_CONFIG"):
            path = environ["OFFLOAD_CONFIG"]
        values = {key: s.default for key, s in SETTINGS.items()}
        sources = dict.fromkeys(SETTINGS, "default")
        file_path = None
        if path is not None:
            from pathlib import Path  # here: ~8 ms of imports that a process configured without a file skips

            file_path = Path(path)
            for key, raw in _read_ini(file_path).items():
                values[key] = _parse(key, raw, f"{file_path}")
                sources[key] = f"file {file_path}"
        for key, setting in SETTINGS.items():
            if setting.env in environ:
                values[key] = _parse(key, environ[setting.env], f"environment variable {setting.env}")
                sources[key] = f"environment {setting.env}"
        for raw_key, value in (overrides or {}).items():
            key = _canonical(raw_key)
            if key not in SETTINGS:
                raise ConfigError(f"unknown setting {raw_key!r}; known: {', '.join(sorted(SETTINGS))}")
            if value is None:
                continue
            values[key] = _parse(key, value, "argument") if isinstance(value, str) else value
            sources[key] = "argument"
        _validate(values)
        return cls(values, sources, file_path)

    def __getitem__(self, key: str) -> Any:
        return self._values[_canonical(key)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def source(self, key: str) -> str:
        return self._sources[_canonical(key)]

    def replace(self, **overrides: Any) -> Config:
        """A copy with some values replaced (keys as in ``offload.jobs.timeout`` or ``jobs_timeout``)."""
        values = dict(self._values)
        sources = dict(self._sources)
        for raw_key, value in overrides.items():
            key = _canonical(raw_key.replace("__", "."))
            if key not in SETTINGS:
                raise ConfigError(f"unknown setting {raw_key!r}")
            values[key] = _parse(key, value, "argument") if isinstance(value, str) else value
            sources[key] = "argument"
        _validate(values)
        return Config(values, sources, self.path)


def _read_ini(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        first_line = str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not a valid ini file: {first_line}") from None
    if not parser.has_section("offload"):
        raise ConfigError(f"{path}: no [offload] section")
    found: dict[str, str] = {}
    for raw_key, raw in parser.items("offload"):
        key = _canonical(raw_key)
        if key not in SETTINGS:
            raise ConfigError(f"{path}: unknown setting {raw_key!r} in [offload]")
        found[key] = raw
    return found


def _parse(key: str, raw: str, origin: str) -> Any:
    try:
        return SETTINGS[key].parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{key} from {origin}: {exc}") from None


def _validate(values: dict[str, Any]) -> None:
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    timeout = values["offload.jobs.timeout"]
    need(timeout == NO_LIMIT or timeout > 0, "offload.jobs.timeout must be > 0 seconds, or -1 for no limit")
    need(values["offload.jobs.timeout_grace"] >= 0, "offload.jobs.timeout_grace must be >= 0 seconds")
    need(values["offload.jobs.keep"] >= 0, "offload.jobs.keep must be >= 0")
    need(values["offload.jobs.max_attempts"] >= 1, "offload.jobs.max_attempts must be >= 1")
    need(1 <= values["offload.worker.concurrency"] <= 512, "offload.worker.concurrency must be between 1 and 512")
    need(values["offload.worker.lease"] >= 1, "offload.worker.lease must be at least 1 second")
    need(values["offload.worker.grace"] >= 0, "offload.worker.grace must be >= 0")
    need(values["offload.worker.dead_after"] >= 3, "offload.worker.dead_after must be at least 3 seconds")
    need(bool(re.fullmatch(r"[A-Za-z0-9_.:-]{1,100}", values["offload.site_id"])),
         "offload.site_id may only contain letters, digits, '_', '-', '.' and ':'")
    for entry in values["offload.api.tokens"]:
        token, _, role = entry.rpartition(":")
        need(bool(token) and role in ("admin", "read"),
             "offload.api.tokens entries must look like token:admin or token:read")
