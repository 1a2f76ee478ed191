"""RQ's job options (``rq_kwargs``, ``Queue.enqueue_call``/``enqueue_in`` keywords) as offload's enqueue options.

Each RQ option gets RQ 2.x's meaning where offload has the concept, and is refused, by name, where it has not:

- ``timeout`` / ``job_timeout``: RQ's ``parse_timeout`` (an int, a digit string or ``"1h"``, ``"30m"``...; floats
  are truncated); ``None`` is RQ's queue default, 180 s; ``-1`` no limit; ``0`` is refused.
- ``job_id`` (RQ's id rules are a subset of offload's), ``meta``, ``description``, ``at_front`` (the job goes to
  the head of its queue; not for a scheduled job), ``retry`` (``rq.Retry(max, interval)``: ``max`` retries at a
  fixed interval), ``unique``;
- ``result_ttl``, ``failure_ttl``: accepted; offload keeps every done job for ``offload.jobs.keep`` instead;
- refused: ``ttl`` (a job that may not run after a deadline), ``depends_on``, ``repeat``, ``on_success``,
  ``on_failure``, ``on_stopped``, ``pipeline``, ``webhooks``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from offload.retry import RetryPolicy

#: RQ's ``Queue.DEFAULT_TIMEOUT``: what a job gets when no timeout is given to RQ itself.
RQ_DEFAULT_TIMEOUT = 180
#: Every option RQ's ``Queue.parse_args`` takes out of ``enqueue``/``enqueue_in``/``enqueue_at`` keywords.
RQ_ENQUEUE_OPTIONS = ("job_timeout", "description", "result_ttl", "ttl", "failure_ttl", "depends_on", "job_id",
                      "at_front", "meta", "retry", "repeat", "on_success", "on_failure", "on_stopped", "pipeline",
                      "unique", "webhooks")
#: ``enqueue_call``'s RQ options (``timeout`` where ``enqueue`` says ``job_timeout``).
RQ_CALL_OPTIONS = tuple("timeout" if name == "job_timeout" else name for name in RQ_ENQUEUE_OPTIONS)
_KEPT_FOR_KEEP = ("result_ttl", "failure_ttl")
_NO_SUCH_CONCEPT = {
    "ttl": "offload runs a waiting job whenever a worker takes it; it has no deadline after which a job is dropped",
    "depends_on": "offload has no job dependencies; enqueue the next job at the end of the first one",
    "repeat": "offload repeats work with periodic schedules (offload.periodic), not per job",
    "on_success": "offload has no job callbacks; call it at the end of the job function",
    "on_failure": "offload has no job callbacks; catch the exception in the job function",
    "on_stopped": "offload has no job callbacks",
    "pipeline": "offload enqueues through its own store, not a Redis pipeline",
    "webhooks": "offload's webhooks are per event subscription (offload webhooks add), not per job",
}
#: Keys of the stored ``meta`` that RQ-shaped jobs do not show in theirs: an explicit RQ ``description`` (CKAN's
#: title stays in ``meta["title"]``), and the mark of a job added through RQ's queue interface, whose ``meta`` is
#: RQ's (no ``title``: offload's records always have one).
HIDDEN_PREFIX = "offload.rq."
DESCRIPTION_KEY = "offload.rq.description"
UNTITLED_KEY = "offload.rq.untitled"


def rq_meta(stored: dict[str, Any] | None) -> dict[str, Any]:
    """A job's ``meta`` as RQ code sees it (the hidden keys left out)."""
    stored = stored or {}
    meta = {k: v for k, v in stored.items() if not k.startswith(HIDDEN_PREFIX)}
    if stored.get(UNTITLED_KEY) and meta.get("title") is None:
        meta.pop("title", None)
    return meta


def hidden_meta(stored: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (stored or {}).items() if k.startswith(HIDDEN_PREFIX)}


class TimeoutFormatError(ValueError):
    """A timeout RQ would not accept either."""


def parse_timeout(value: Any) -> int | None:
    """RQ 2.x's ``parse_timeout``: seconds as an int from an int, a float (truncated), a digit string or digits
    with a unit (``d``, ``h``, ``m``, ``s``); None stays None."""
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            raise TimeoutFormatError(f"timeout must be seconds, not {value!r}")
        return None
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except (ValueError, TypeError, OverflowError):
        pass
    if isinstance(value, str):
        units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
        digits, unit = value[:-1], value[-1:].lower()
        if digits.isdigit() and unit in units:
            return int(digits) * units[unit]
    raise TimeoutFormatError(
        f"timeout {value!r} is not valid: give an integer, a string of digits, or digits and a unit (d, h, m, s) "
        "such as \"1h\" or \"23m\"")


def job_seconds(value: Any) -> float | None:
    """offload's ``timeout`` for RQ's: seconds, or None for no limit (RQ's -1); RQ's default for None."""
    seconds = parse_timeout(value)
    if seconds is None:
        seconds = RQ_DEFAULT_TIMEOUT
    if seconds == 0:
        raise ValueError("0 timeout is not allowed. Use -1 for infinite timeout")
    if seconds < 0:
        if seconds != -1:
            raise ValueError(f"timeout {seconds} is not valid: give seconds > 0, or -1 for no limit")
        return None
    return float(seconds)


@dataclass
class RQOptions:
    """RQ's options for one job, as offload will store it."""

    timeout: float | None = float(RQ_DEFAULT_TIMEOUT)
    job_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    max_attempts: int | None = None
    retry: RetryPolicy | None = None
    unique: bool = False
    at_front: bool = False
    task_status: Any = None

    def enqueue_options(self) -> dict[str, Any]:
        """Keyword options for ``Offload.enqueue``."""
        options: dict[str, Any] = {"timeout": -1 if self.timeout is None else self.timeout, "meta": self.meta}
        if self.job_id is not None:
            options["job_id"] = self.job_id
        if self.max_attempts is not None:
            options["max_attempts"] = self.max_attempts
        if self.retry is not None:
            options["retry"] = self.retry
        if self.task_status is not None:
            options["task_status"] = self.task_status
        return options


def _retry(value: Any) -> tuple[int, RetryPolicy]:
    """``rq.Retry(max, interval)`` (or anything with ``max`` and ``interval(s)``) as attempts and a policy."""
    retries = getattr(value, "max", None)
    intervals = getattr(value, "intervals", getattr(value, "interval", 0))
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retry must be rq.Retry(max=N, interval=seconds), not {value!r}")
    if isinstance(intervals, (list, tuple)):
        distinct = set(intervals)
        if len(distinct) > 1:
            raise ValueError(f"retry intervals {list(intervals)} differ: offload retries after one fixed interval "
                             "(or with exponential backoff, offload.RetryPolicy); give rq.Retry(max, interval=N)")
        intervals = next(iter(distinct), 0)
    return retries + 1, RetryPolicy("fixed", float(intervals), jitter=False)


def rq_options(given: Mapping[str, Any], timeout_key: str = "timeout") -> RQOptions:
    """``RQOptions`` from RQ's keywords (``timeout_key``: ``timeout`` for ``enqueue_call``/``rq_kwargs``,
    ``job_timeout`` for ``enqueue``/``enqueue_in``/``enqueue_at``). Unknown or unsupported options are refused
    with a ``TypeError`` / ``ValueError`` that names them."""
    options = dict(given)
    known = set(RQ_CALL_OPTIONS if timeout_key == "timeout" else RQ_ENQUEUE_OPTIONS) | {"task_status"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown RQ option(s): {', '.join(unknown)}")
    refused = [name for name in _NO_SUCH_CONCEPT if options.get(name) is not None]
    if refused:
        raise ValueError("; ".join(f"RQ option {name} is not supported by offload: {_NO_SUCH_CONCEPT[name]}"
                                   for name in refused))
    out = RQOptions(timeout=job_seconds(options.get(timeout_key)), unique=bool(options.get("unique")),
                    at_front=bool(options.get("at_front")), task_status=options.get("task_status"))
    for name in _KEPT_FOR_KEEP:
        parse_timeout(options.get(name))  # refused as RQ would refuse it, else kept for offload.jobs.keep
    if options.get("job_id") is not None:
        out.job_id = options["job_id"]
    meta = options.get("meta")
    if meta is not None:
        if not isinstance(meta, dict):
            raise ValueError(f"meta must be a dict, not {type(meta).__name__}")
        out.meta = dict(meta)
    if options.get("description") is not None:
        out.meta[DESCRIPTION_KEY] = str(options["description"])
    if options.get("retry") is not None:
        out.max_attempts, out.retry = _retry(options["retry"])
    return out
