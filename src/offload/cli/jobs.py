"""``offload list``, ``show``, ``cancel``, ``retry``, ``clear``, ``test``, ``enqueue`` and ``purge``: jobs, as CKAN's
``ckan jobs`` shows and manages them (its output where the two overlap)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

import click

from offload import codec
from offload.cli.common import app_for, created_text, friendly, time_text
from offload.errors import OffloadError
from offload.jobs import (
    DONE_STATES,
    FAILED,
    PENDING_STATES,
    QUEUED,
    SCHEDULED,
    SORT_FIELDS,
    STATES,
    JobQuery,
    check_queue_name,
)

PURGE_BATCH = 1000  # on a terminal, so that the bar moves
TIME_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]


# -- inspecting -------------------------------------------------------------------------------------------------
@click.command("list")
@click.argument("queues", nargs=-1)
@click.option("--state", "-s", "states", multiple=True, type=click.Choice([*STATES, "pending", "all"]),
              help="filter by state (repeatable; default queued)")
@click.option("--search", "-q", "text", help="text in the title, function path or task name (any case)")
@click.option("--args", "args_text", help='text in the arguments as stored, JSON (any case), e.g. \'"user_id": 42\'')
@click.option("--id", "job_id", help="the job with this id (exact)")
@click.option("--since", type=click.DateTime(TIME_FORMATS), help="created at or after (UTC)")
@click.option("--until", type=click.DateTime(TIME_FORMATS), help="created before (UTC)")
@click.option("--sort", type=click.Choice(SORT_FIELDS), default="created_at", show_default=True)
@click.option("--desc", "descending", is_flag=True, help="newest (latest) first")
@click.option("--limit", "-l", type=click.IntRange(0, 100_000), default=200, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@click.option("--ids", "-i", "ids_only", is_flag=True, help="print only job ids")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
@friendly
def list_(ctx: click.Context, queues: tuple[str, ...], states: tuple[str, ...], text: str | None,
          args_text: str | None, job_id: str | None, since: dt.datetime | None, until: dt.datetime | None,
          sort: str, descending: bool, limit: int, offset: int, ids_only: bool, as_json: bool) -> None:
    """List jobs: one line per job, "<created> <id> <queue> "<title>"" (CKAN's format; "(priority N)" after it
    when N is not 0). By default the queued
    jobs of every queue, oldest first; --search, --args, --id, --since and --until narrow the list, --sort and --desc
    order it. A note on stderr says when more jobs match than were printed."""
    wanted: list[str] | None = []
    for state in states or (QUEUED,):
        if state == "all":
            wanted = None
            break
        assert wanted is not None
        wanted.extend(s for s in (PENDING_STATES if state == "pending" else [state]) if s not in wanted)
    for queue in queues:
        check_queue_name(queue)
    query = JobQuery(queues=queues or None, states=tuple(wanted) if wanted is not None else None, job_id=job_id,
                     text=text or None, args=args_text or None, created_after=_utc(since),
                     created_before=_utc(until), sort=sort, descending=descending)
    found = app_for(ctx).store.search(query, limit, offset)
    jobs = found.jobs
    if found.total > offset + len(jobs):
        click.echo(f"Showing {len(jobs)} of {found.total} {_jobs_text(wanted)} (from number {offset + 1}); use "
                   "--limit and --offset for the others.", err=True)
    if as_json:
        click.echo(json.dumps([j.to_dict() for j in jobs], indent=2))
        return
    if not jobs:
        where = f" in queue(s) {', '.join(json.dumps(q) for q in queues)}" if queues else ""
        skipped = f" after the first {offset}" if offset else ""
        matching = " matching the filter" if not query.plain else ""
        click.echo(f"There are no {_jobs_text(wanted)}{where}{matching}{skipped}.")
        return
    for job in jobs:
        if ids_only:
            click.echo(job.id)
        else:
            title = f' "{job.title}"' if job.title else ""
            state = "" if wanted == [QUEUED] else f" [{job.state}]"
            priority = f" (priority {job.priority})" if job.priority else ""
            click.echo(f"{created_text(job)} {job.id} {job.queue}{title}{state}{priority}")


def _utc(moment: dt.datetime | None) -> float | None:
    """A time given on the command line (no zone: UTC) as epoch seconds."""
    if moment is None:
        return None
    return moment.replace(tzinfo=dt.timezone.utc).timestamp() if moment.tzinfo is None else moment.timestamp()


def _jobs_text(states: list[str] | None) -> str:
    """``queued jobs``, ``failed or canceled jobs``, ``jobs`` (every state)."""
    if not states:
        return "jobs"
    if len(states) == 1:
        return f"{states[0]} jobs"
    return f"{', '.join(states[:-1])} or {states[-1]} jobs"


def _bar(progress: dict[str, Any]) -> str:
    done, total, message = progress.get("done"), progress.get("total"), progress.get("message")
    suffix = f" {message}" if message else ""
    if isinstance(done, (int, float)) and isinstance(total, (int, float)) and total > 0:
        share = max(0.0, min(1.0, done / total))
        filled = int(share * 30)
        return f"[{'#' * filled}{'.' * (30 - filled)}] {share:4.0%} ({done:g}/{total:g}){suffix}"
    return f"{done}{suffix}"


@click.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
@friendly
def show(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Show one job, with its result or error."""
    job = app_for(ctx).get_job(job_id)
    if as_json:
        click.echo(json.dumps(job.to_dict(), indent=2))
        return
    lines = [
        f"ID:       {job.id}",
        f"Title:    {json.dumps(job.title) if job.title is not None else 'None'}",
        f"Created:  {created_text(job)}",
        f"Queue:    {job.queue}",
        f"Priority: {job.priority}",
        f"State:    {job.state}",
        f"Function: {job.target}",
        f"Attempts: {job.attempts} of {job.max_attempts}",
    ]
    try:
        lines.append(f"Args:     {codec.dumps(job.args)}  Kwargs: {codec.dumps(job.kwargs)}")
    except OffloadError:
        lines.append(f"Payload:  {job.payload[:500]}")
    if job.run_at and job.state == "scheduled":
        lines.append(f"Runs at:  {time_text(job.run_at)}")
    lines += [f"Started:  {time_text(job.started_at)}", f"Ended:    {time_text(job.ended_at)}"]
    if job.worker:
        lines.append(f"Worker:   {job.worker}")
    if job.progress:
        lines.append(f"Progress: {_bar(job.progress)}")
    if job.result_json is not None:
        lines.append(f"Result:   {job.result_json[:2000]}")
    if job.error and job.state == FAILED:
        lines.append(f"Error:    {job.error.get('type')}: {job.error.get('message')} ({job.error.get('reason')})")
        if job.error.get("traceback"):
            lines.append(str(job.error["traceback"]).rstrip())
    elif job.error and job.state in (QUEUED, SCHEDULED):  # to be retried: the error it will be retried after
        lines.append(f"Last error: {job.error.get('type')}: {job.error.get('message')} ({job.error.get('reason')}, "
                     f"attempt {job.error.get('attempt', '?')})")
    if len(job.errors) > 1 or (job.errors and job.state != FAILED):
        lines.append("Attempts that failed:")
        for err in job.errors:
            lines.append(f"  #{err.get('attempt', '?')} {err.get('type')}: {err.get('message')}")
    click.echo("\n".join(lines))


# -- managing ---------------------------------------------------------------------------------------------------
@click.command()
@click.argument("job_id")
@click.pass_context
@friendly
def cancel(ctx: click.Context, job_id: str) -> None:
    """Cancel a job (a running job's process is stopped)."""
    app_for(ctx).cancel(job_id)
    click.echo(f"Cancelled job {job_id}")


@click.command()
@click.argument("job_id")
@click.pass_context
@friendly
def retry(ctx: click.Context, job_id: str) -> None:
    """Queue a failed or canceled job again."""
    app_for(ctx).retry(job_id)
    click.echo(f"Requeued job {job_id}")


@click.command()
@click.argument("queues", nargs=-1)
@click.option("--yes", "-y", is_flag=True, help="do not ask before clearing every queue")
@click.pass_context
@friendly
def clear(ctx: click.Context, queues: tuple[str, ...], yes: bool) -> None:
    """Delete the waiting jobs of QUEUES (default: every queue; asked first on a terminal, unless --yes)."""
    for queue in queues:
        check_queue_name(queue)
    app = app_for(ctx)
    existing = app.queues()
    unknown = [q for q in dict.fromkeys(queues) if q not in existing]
    if unknown:
        known = f" (queues with jobs: {', '.join(existing)})" if existing else " (no queue holds a job)"
        raise click.ClickException(f"There is no queue named {', '.join(json.dumps(q) for q in unknown)}{known}; "
                                   "nothing was cleared")
    names = list(dict.fromkeys(queues)) or existing
    if not queues and names and not yes and sys.stdin.isatty():
        waiting = app.store.count(names, [QUEUED, SCHEDULED])
        click.confirm(f"Delete the {waiting} waiting job(s) of every queue ({', '.join(names)})?", abort=True)
    if names and sys.stderr.isatty():
        count = 0
        with click.progressbar(length=max(1, app.store.count(names, [QUEUED, SCHEDULED])), label="Clearing",
                               file=sys.stderr, show_pos=True) as bar:
            for name in names:
                cleared = app.clear([name])
                count += cleared
                bar.update(cleared)
    else:
        count = app.clear(names) if names else 0
    click.echo(f"Cleared queue(s) {', '.join(json.dumps(q) for q in names)} ({count} job(s))")


@click.command()
@click.argument("queues", nargs=-1)
@click.pass_context
@friendly
def test(ctx: click.Context, queues: tuple[str, ...]) -> None:
    """Enqueue a test job on each of QUEUES (default: "default")."""
    app = app_for(ctx)
    for queue in queues or ("default",):
        job = app.enqueue("offload.demo:test_job", ["A test job"], title="A test job", queue=queue)
        click.echo(f'Added test job {job.id} to queue "{queue}"')


def _json_arg(text: str | None, what: str, kind: type) -> Any:
    if text is None:
        return kind()
    try:
        value = codec.loads(text)
    except OffloadError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=what) from None
    if not isinstance(value, kind):
        raise click.BadParameter(f"must be a JSON {'array' if kind is list else 'object'}", param_hint=what)
    return value


@click.command()
@click.argument("path")
@click.option("--args", "args_json", help='positional arguments as a JSON array, e.g. \'[1, "a"]\'')
@click.option("--kwargs", "kwargs_json", help="keyword arguments as a JSON object")
@click.option("--queue", "-q", default="default", show_default=True)
@click.option("--title", "-t")
@click.option("--timeout", type=float, help="seconds (-1: no limit)")
@click.option("--delay", type=click.FloatRange(0), help="run after this many seconds")
@click.option("--priority", "-p", type=click.IntRange(0, 9), default=0, show_default=True,
              help="0 (first) to 9 (last) within its queue")
@click.option("--json", "as_json", is_flag=True, help="print the job as JSON")
@click.pass_context
@friendly
def enqueue(ctx: click.Context, path: str, args_json: str | None, kwargs_json: str | None, queue: str,
            title: str | None, timeout: float | None, delay: float | None, priority: int, as_json: bool) -> None:
    """Enqueue the function at import PATH ("package.module:function")."""
    args = _json_arg(args_json, "--args", list)
    kwargs = _json_arg(kwargs_json, "--kwargs", dict)
    job = app_for(ctx).enqueue(path, args, kwargs, title=title, queue=queue, timeout=timeout, delay=delay,
                               priority=priority)
    if as_json:
        click.echo(json.dumps(job.to_dict(), indent=2))
    elif job.duplicate:
        click.echo(f'Job {job.id} is already pending on queue "{job.queue}"')
    else:
        click.echo(f'Added job {job.id} to queue "{queue}"')


@click.command()
@click.option("--older-than", type=float, help="seconds (default offload.jobs.keep)")
@click.pass_context
@friendly
def purge(ctx: click.Context, older_than: float | None) -> None:
    """Delete finished, failed and canceled jobs older than the retention period now."""
    app = app_for(ctx)
    if sys.stderr.isatty():
        # The done jobs of every age: an upper bound of what goes; the bar ends when the purge does.
        with click.progressbar(length=max(1, app.store.count(None, list(DONE_STATES))), label="Purging",
                               file=sys.stderr, show_pos=True) as bar:
            count = app.purge(older_than, progress=bar.update, batch=PURGE_BATCH)
    else:
        count = app.purge(older_than)
    click.echo(f"Purged {count} job(s)")


