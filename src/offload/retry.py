"""When a failed attempt runs again: retry policies and the decision a worker takes after a failure.

Every failure of an attempt (an exception, a timeout, a crash of the executor process, a lost lease) uses one
attempt of the job's budget (``max_attempts``, default 3, the first run included). While attempts remain, the
job is scheduled again after the policy's delay: exponential by default (10 s, 20 s, 40 s ... capped at one
hour), each delay multiplied by a random factor in [0.5, 1.5) so that a burst of failures does not come back
as a burst. A job can override the delay (``raise offload.Retry(countdown=...)``) and exceptions can be
marked as not worth retrying.
"""

from __future__ import annotations

from offload.errors import OffloadError

# Imported by ``import offload``, hence by every executor on its way up: no dataclasses, typing or random at
# import time (tens of milliseconds of a worker's start).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import random
    from typing import Any, Literal

DEFAULT_RETRY_DELAY = 180.0  # seconds: Retry() without a countdown, as the Celery-era API did


class RetryPolicy:
    """How long to wait before attempt ``n + 1`` after attempt ``n`` failed. Immutable."""

    __slots__ = ("backoff", "delay", "jitter", "max_delay")
    backoff: Literal["exponential", "fixed"]
    delay: float
    max_delay: float
    jitter: bool

    def __init__(self, backoff: Literal["exponential", "fixed"] = "exponential", delay: float = 10.0,
                 max_delay: float = 3600.0, jitter: bool = True) -> None:
        if backoff not in ("exponential", "fixed"):
            raise ValueError(f"backoff must be 'exponential' or 'fixed', not {backoff!r}")
        if not (delay >= 0 and max_delay >= 0):
            raise ValueError("retry delays must be >= 0 seconds")
        for name, value in (("backoff", backoff), ("delay", delay), ("max_delay", max_delay), ("jitter", jitter)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"RetryPolicy is immutable: cannot set {name!r}")

    def _key(self) -> tuple[Any, ...]:
        return (self.backoff, self.delay, self.max_delay, self.jitter)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RetryPolicy):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"RetryPolicy(backoff={self.backoff!r}, delay={self.delay!r}, max_delay={self.max_delay!r}, "
                f"jitter={self.jitter!r})")

    def delay_for(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = self.delay if self.backoff == "fixed" else self.delay * (2 ** max(0, attempt - 1))
        base = min(base, self.max_delay)
        if self.jitter:
            base *= 0.5 + (rng.random() if rng is not None else _random())
        return float(min(base, self.max_delay))

    def to_dict(self) -> dict[str, Any]:
        return {"backoff": self.backoff, "delay": self.delay, "max_delay": self.max_delay, "jitter": self.jitter}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RetryPolicy:
        if not data:
            return DEFAULT_POLICY
        known = {k: data[k] for k in ("backoff", "delay", "max_delay", "jitter") if k in data}
        return cls(**known)


def _random() -> float:
    import random

    return random.random()


DEFAULT_POLICY = RetryPolicy()


class Retry(OffloadError):
    """The job asked to be retried: this attempt ends, and the job runs again after ``countdown`` seconds (or at
    ``eta``, a datetime or epoch seconds) while its budget allows. ``max_retries`` replaces the budget (retries
    after the first attempt, so the job may run ``max_retries + 1`` times in all). ``args`` / ``kwargs`` replace
    the arguments of the next attempts (None keeps them), as Celery's ``Task.retry`` does. ``exc`` is the failure
    recorded for this attempt (and the one the job fails with once no attempt is left)."""

    def __init__(
        self,
        countdown: float | None = None,
        max_retries: int | None = None,
        exc: BaseException | None = None,
        message: str | None = None,
        *,
        args: Any = None,
        kwargs: Any = None,
        eta: Any = None,
    ) -> None:
        super().__init__(message or (f"retry requested: {exc!r}" if exc else "retry requested"))
        if countdown is not None and eta is not None:
            raise ValueError("give either countdown or eta, not both")
        if max_retries is not None and (isinstance(max_retries, bool) or not isinstance(max_retries, int)
                                        or max_retries < 0):
            raise ValueError(f"max_retries must be an integer >= 0, not {max_retries!r}")
        self.countdown = countdown if eta is None else _seconds_until(eta)
        self.max_retries = max_retries
        self.exc = exc
        # The next attempt's arguments, encoded here in the job's process: a value offload cannot encode is
        # refused at the retry call, naming the argument, instead of failing the job later.
        self.next_payload: str | None = None
        self.replaces: tuple[bool, bool] = (args is not None, kwargs is not None)
        if args is not None or kwargs is not None:
            from offload import codec

            if args is not None and (isinstance(args, (str, bytes, dict)) or not hasattr(args, "__iter__")):
                raise ValueError(f"args must be a list or tuple of arguments, not {type(args).__name__}")
            if kwargs is not None and not isinstance(kwargs, dict):
                raise ValueError(f"kwargs must be a dict, not {type(kwargs).__name__}")
            self.next_payload = codec.encode_payload(list(args) if args is not None else [], kwargs or {})

    def report_fields(self) -> dict[str, Any]:
        """What the worker needs to decide and apply the retry: added to the attempt's error report."""
        fields: dict[str, Any] = {"countdown": self.countdown, "max_retries": self.max_retries}
        if self.next_payload is not None:
            fields["retry_with"] = {"payload": self.next_payload, "args": self.replaces[0],
                                    "kwargs": self.replaces[1]}
        return fields


#: The longest a job may snooze: a year and a day, like the longest timeout.
MAX_SNOOZE = 366 * 86400.0


class Snooze(OffloadError):
    """The job asked to run again later: this attempt ends and the job is scheduled ``seconds`` from now,
    without using up an attempt and without recording an error (waiting on something outside: a rate-limited
    API, a file not there yet). ``seconds``: a number from 0 to 366 days."""

    def __init__(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= MAX_SNOOZE:
            raise ValueError(f"invalid snooze {seconds!r}: give the seconds to wait, a number from 0 to {MAX_SNOOZE:g}")
        super().__init__(f"snooze for {seconds:g} s")
        self.seconds = float(seconds)


def _seconds_until(eta: Any) -> float:
    import datetime as dt
    import time

    if isinstance(eta, dt.datetime):
        at = (eta if eta.tzinfo is not None else eta.replace(tzinfo=dt.timezone.utc)).timestamp()
    elif isinstance(eta, (int, float)) and not isinstance(eta, bool):
        at = float(eta)
    else:
        raise ValueError(f"eta must be a datetime or epoch seconds, not {eta!r}")
    return max(0.0, at - time.time())


def next_payload(current: str, retry_with: dict[str, Any] | None) -> str | None:
    """The payload of the next attempt after a ``Retry`` that replaced the arguments (``retry_with`` from its
    report), or None when it kept them. A part not replaced (only ``args`` given, say) is kept from ``current``."""
    if not retry_with:
        return None
    payload = str(retry_with["payload"])
    if retry_with.get("args") and retry_with.get("kwargs"):
        return payload
    from offload import codec

    new_args, new_kwargs = codec.decode_payload(payload)
    old_args, old_kwargs = codec.decode_payload(current)
    return codec.encode_payload(new_args if retry_with.get("args") else old_args,
                                new_kwargs if retry_with.get("kwargs") else old_kwargs)


def recorded_budget(attempts: int, max_attempts: int, max_retries: int | None) -> int | None:
    """The ``max_attempts`` to record after a failed attempt that asked for ``max_retries`` (None: unchanged),
    so that a job never shows more attempts than its budget ("5 of 3"): the new budget, or the attempts made
    when they are more already."""
    if max_retries is None:
        return None
    budget = max(max_retries + 1, attempts)
    return None if budget == max_attempts else budget


class MaxRetriesExceededError(OffloadError):
    """The task asked to be retried, but its retries are used up (Celery's name)."""

    retryable = False


class RetryDecision:
    """What happens after a failed attempt: ``retry_at`` is None when the job fails for good."""

    __slots__ = ("reason", "retry_at")

    def __init__(self, retry_at: float | None, reason: str) -> None:
        self.retry_at = retry_at
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RetryDecision):
            return NotImplemented
        return (self.retry_at, self.reason) == (other.retry_at, other.reason)

    def __hash__(self) -> int:
        return hash((self.retry_at, self.reason))

    def __repr__(self) -> str:
        return f"RetryDecision(retry_at={self.retry_at!r}, reason={self.reason!r})"


def decide(
    attempts: int,
    max_attempts: int,
    policy: RetryPolicy,
    now: float,
    retryable: bool = True,
    countdown: float | None = None,
    max_retries: int | None = None,
) -> RetryDecision:
    """Retry or give up after attempt number ``attempts`` failed."""
    budget = max_attempts if max_retries is None else max_retries + 1
    if not retryable:
        return RetryDecision(None, "not retryable")
    if attempts >= budget:
        return RetryDecision(None, f"no attempts left ({attempts} of {budget})")
    delay = policy.delay_for(attempts) if countdown is None else max(0.0, countdown)
    return RetryDecision(now + delay, f"attempt {attempts + 1} of {budget} in {delay:.1f} s")
