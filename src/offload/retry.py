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
    """The job asked to be retried."""

    def __init__(
        self,
        countdown: float | None = None,
        max_retries: int | None = None,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(message or (f"retry requested: {exc!r}" if exc else "retry requested"))
        self.countdown = countdown
        self.max_retries = max_retries
        self.exc = exc


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
