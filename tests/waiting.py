"""Waiting for a condition in tests without sleeping a fixed time: poll it, fail clearly when it never holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02,
               what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy and return that; raise ``TimeoutError`` naming
    ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout:g} s")
        time.sleep(interval)
