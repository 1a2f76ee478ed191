"""What every ``offload`` command shares: the site the command line selects, one-line errors, times, logging."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from offload.app import Offload
from offload.config import Config
from offload.errors import JobNotFound, OffloadError
from offload.jobs import Job

F = TypeVar("F", bound=Callable[..., Any])


def created_text(job: Job) -> str:
    return job.created.strftime("%Y-%m-%dT%H:%M:%S")


def time_text(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def config_for(ctx: click.Context) -> Config:
    """The configuration the command line selects (store, site id, ini file), without opening anything."""
    obj = ctx.find_root().obj
    if obj.get("conf") is None:
        overrides = {key: value for key, value in
                     (("offload.store", obj["store"]), ("offload.site_id", obj["site_id"])) if value is not None}
        obj["conf"] = Config.load(obj["config"], overrides)
    conf: Config = obj["conf"]
    return conf


def app_for(ctx: click.Context) -> Offload:
    obj = ctx.find_root().obj
    if obj.get("app") is None:
        obj["app"] = Offload(config=config_for(ctx))
    app: Offload = obj["app"]
    return app


def friendly(fn: F) -> F:
    """Turn offload's own errors into one line on stderr and exit 1, never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except JobNotFound as exc:
            click.echo(str(exc), err=True)
            sys.exit(1)
        except (OffloadError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        except ImportError as exc:  # a job or task module (--import, offload.tasks.imports)
            raise click.ClickException(f"{exc} (check --import, offload.tasks.imports and the worker's --path)"
                                       ) from None

    return wrapper  # type: ignore[return-value]


def _not_per_job(record: logging.LogRecord) -> bool:
    return not getattr(record, "offload_per_job", False)


def setup_logging(level: str, quiet_jobs: bool = False) -> logging.Handler:
    """offload's log lines on stderr at ``level``; ``quiet_jobs`` leaves out each job's started and finished
    lines (a burst run). Returns the handler."""
    handler = logging.StreamHandler(sys.stderr)
    if quiet_jobs:
        handler.addFilter(_not_per_job)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s"))
    logger = logging.getLogger("offload")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    return handler
