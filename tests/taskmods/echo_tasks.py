"""Tasks registered by name, imported by workers with --import."""

from __future__ import annotations

import os
from pathlib import Path

import offload


@offload.task(name="tests.echo", queue="named")
def echo(*args: object, **kwargs: object) -> dict[str, object]:
    return {"args": list(args), "kwargs": kwargs}


@offload.task(name="tests.flaky", max_retries=3)
def flaky(marker: str) -> str:
    """Fails the first time it runs (asking for a retry in 0.2 s), succeeds the second time."""
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once")
        flaky.retry(exc=OSError("temporary"), countdown=0.2)
    return "ok after retry"


@offload.task(name="tests.invalid", no_retry_on=(ValueError,))
def invalid() -> None:
    raise ValueError("bad input; retrying will not help")


def entry_point_modules() -> list[str]:
    """The offload.tasks entry point of a test distribution points here."""
    return ["tests.taskmods.ep_tasks"]


PID = os.getpid()
