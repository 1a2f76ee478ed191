"""Tasks written as CKAN's Celery-era docs (2.0-2.6, doc/maintaining/background-tasks.rst) show them: a named task
that retries itself with ``echo.retry(args=(message,), exc=e, countdown=120, max_retries=10)``.

The marker file counts the attempts (one line each) and says how many of them fail."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import offload
from offload import current_job


def _attempt(marker: str) -> int:
    path = Path(marker)
    with path.open("a") as f:
        f.write("x\n")
    return len(path.read_text().splitlines())


@offload.task(name="celery_tasks.echofunction")
def echo(message: str, marker: str, fail_times: int, suffix: str = "") -> str:
    """As the Celery-era docs' echo task: the work may fail; retry in 2 minutes with a changed argument."""
    try:
        if _attempt(marker) <= fail_times:
            raise OSError(f"temporary failure of {message!r}")
    except Exception as e:
        echo.retry(args=(message + "!", marker, fail_times), kwargs={"suffix": suffix + "?"}, exc=e, countdown=120,
                   max_retries=10)
    return message + suffix


@offload.task(name="celery_tasks.at_eta")
def at_eta(marker: str, seconds: float) -> str:
    """Retries once at an ``eta`` (a datetime) instead of a countdown."""
    if _attempt(marker) == 1:
        echo_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)
        at_eta.retry(eta=echo_at)
    return "ran at eta"


@offload.task(name="celery_tasks.always_fails", max_retries=2)
def always_fails(marker: str, with_exc: bool) -> None:
    """Asks for a retry every time (now): with ``max_retries=2`` it runs three times, then fails."""
    _attempt(marker)
    if with_exc:
        always_fails.retry(exc=KeyError("still missing"), countdown=0)
    always_fails.retry(countdown=0)


@offload.task(name="celery_tasks.keeps_retrying")
def keeps_retrying(marker: str, until: int) -> int:
    """Fails ``until - 1`` times asking for ``max_retries=10`` (more than the job's default budget), then
    returns the attempt it succeeded on."""
    attempt = _attempt(marker)
    if attempt < until:
        keeps_retrying.retry(exc=RuntimeError(f"attempt {attempt}"), countdown=0, max_retries=10)
    job = current_job()
    return job.attempt if job else -1


async def async_double(x: int) -> dict[str, object]:
    """An ``async def`` job: awaits, and sees its own job while it runs."""
    await asyncio.sleep(0)
    job = current_job()
    return {"double": 2 * x, "job": job.id if job else None}


async def async_fail(message: str) -> None:
    await asyncio.sleep(0)
    raise LookupError(message)
