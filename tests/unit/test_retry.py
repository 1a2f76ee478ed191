from __future__ import annotations

import random

from offload.retry import RetryPolicy, decide


def test_exponential_backoff_with_jitter_and_cap() -> None:
    policy = RetryPolicy(delay=10, max_delay=100)
    rng = random.Random(1)
    for attempt, base in [(1, 10), (2, 20), (3, 40)]:
        delay = policy.delay_for(attempt, rng)
        assert 0.5 * base <= delay < 1.5 * base
    assert all(policy.delay_for(10, rng) <= 100 for _ in range(50))


def test_fixed_without_jitter() -> None:
    assert RetryPolicy("fixed", 7, jitter=False).delay_for(5) == 7


def test_decisions() -> None:
    policy = RetryPolicy("fixed", 5, jitter=False)
    assert decide(1, 3, policy, 100.0).retry_at == 105.0
    assert decide(3, 3, policy, 100.0).retry_at is None
    assert decide(1, 3, policy, 100.0, retryable=False).retry_at is None
    assert decide(1, 3, policy, 100.0, countdown=120).retry_at == 220.0
    assert decide(3, 3, policy, 100.0, max_retries=5).retry_at == 105.0
