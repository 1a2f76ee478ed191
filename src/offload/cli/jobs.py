"""The ``offload`` command line. Output follows CKAN's ``ckan jobs`` where the two overlap."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from offload import codec
from offload.app import Offload
from offload.config import Config
from offload.errors import JobNotFound, OffloadError
from offload.jobs import PENDING_STATES, QUEUED, STATES, Job

F = TypeVar("F", bound=Callable[..., Any])


def _created(job: Job) -> str:
    return job.created.strftime("%Y-%m-%dT%H:%M:%S")


def _time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _config(ctx: click.Context) -> Config:
    """The configuration the command line selects (store, site id, ini file), without opening anything."""
    obj = ctx.find_root().obj
    if obj.get("conf") is None:
        overrides = {key: value for key, value in
                     (("offload.store", obj["store"]), ("offload.site_id", obj["site_id"])) if value is not None}
        obj["conf"] = Config.load(obj["config"], overrides)
    conf: Config = obj["conf"]
    return conf


def _app(ctx: click.Context) -> Offload:
    obj = ctx.find_root().obj
    if obj.get("app") is None:
        obj["app"] = Offload(config=_config(ctx))
    app: Offload = obj["app"]
    return app


def _friendly(fn: F) -> F:
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

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--config", "config", type=click.Path(dir_okay=False), envvar="OFFLOAD_CONFIG",
              help="ini file with an [offload] section")
@click.option("--store", help="store URL (overrides OFFLOAD_STORE and the ini file)")
@click.option("--site-id", help="site id (overrides OFFLOAD_SITE_ID and the ini file)")
@click.version_option(package_name="offload")
@click.pass_context
def main(ctx: click.Context, config: str | None, store: str | None, site_id: str | None) -> None:
    """Background jobs: run workers and manage jobs."""
    ctx.obj = {"config": config, "store": store, "site_id": site_id, "app": None}


# -- worker -----------------------------------------------------------------------------------------------------
@main.command()
@click.argument("queues", nargs=-1)
@click.option("--burst", is_flag=True, help="exit once the queues are empty")
@click.option("--concurrency", "-n", type=click.IntRange(1, 512), help="executor processes (default 1)")
@click.option("--threads", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="jobs run at once inside each executor (for I/O-bound jobs)")
@click.option("--lease", type=click.FloatRange(1), help="lease seconds (default offload.worker.lease)")
@click.option("--grace", type=click.FloatRange(0), help="warm shutdown grace seconds")
@click.option("--import", "imports", multiple=True, help="module to import in executors (tasks); repeatable")
@click.option("--max-jobs-per-child", type=click.IntRange(0), help="recycle an executor after N jobs")
@click.option("--max-memory-per-child", type=click.IntRange(0), help="recycle an executor above N MiB")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--name", help="worker id (default host.pid.random)")
@click.option("--with-scheduler/--without-scheduler", default=True, show_default=True,
              help="enqueue periodic jobs when they are due")
@click.option("--no-scheduler", "no_scheduler", is_flag=True, hidden=True, help="same as --without-scheduler")
@click.option("--max-idle-time", type=click.FloatRange(0), help="exit after this many seconds without a job")
@click.pass_context
@_friendly
def worker(ctx: click.Context, queues: tuple[str, ...], burst: bool, concurrency: int | None, threads: int,
           lease: float | None, grace: float | None, imports: tuple[str, ...], max_jobs_per_child: int | None,
           max_memory_per_child: int | None, log_level: str | None, name: str | None, with_scheduler: bool,
           no_scheduler: bool, max_idle_time: float | None) -> None:
    """Run a worker on QUEUES (default: "default", "webhooks" and each consumer's queue), earlier first."""
    from offload.jobs import check_queue_name
    from offload.worker.supervisor import (
        Supervisor,
        WorkerOptions,
        abandon_executors,
        boot_executors,
        start_executors,
    )

    conf = _config(ctx)
    for queue in queues:
        check_queue_name(queue)
    level = (log_level or conf["offload.log.level"]).upper()
    options = WorkerOptions(
        queues=list(queues),  # none: the supervisor adds the delivery queues to "default"
        concurrency=concurrency or conf["offload.worker.concurrency"],
        threads=threads,
        burst=burst,
        lease=lease or conf["offload.worker.lease"],
        grace=conf["offload.worker.grace"] if grace is None else grace,
        max_jobs_per_child=(conf["offload.worker.max_jobs_per_child"] if max_jobs_per_child is None
                            else max_jobs_per_child),
        max_memory_per_child=(conf["offload.worker.max_memory_per_child"] if max_memory_per_child is None
                              else max_memory_per_child),
        keep=conf["offload.jobs.keep"],
        log_level=level,
        imports=[*conf["offload.tasks.imports"], *imports],
        name=name,
        with_scheduler=with_scheduler and not no_scheduler,
        max_idle_time=max_idle_time,
    )
    # The executors boot (an interpreter each; the offload command started them already), then load the job
    # modules while the supervisor loads the store's driver and connects.
    executors = boot_executors(options)
    try:
        start_executors(executors, options, conf)
        _setup_logging(level)
        app = _app(ctx)
        app.store.ping()
        supervisor = Supervisor(app, options, executors)
    except BaseException:
        abandon_executors(executors)
        raise
    sys.exit(supervisor.run())


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s"))
    logger = logging.getLogger("offload")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


# -- inspecting -------------------------------------------------------------------------------------------------
@main.command("list")
@click.argument("queues", nargs=-1)
@click.option("--state", "-s", "states", multiple=True, type=click.Choice([*STATES, "pending", "all"]),
              help="filter by state (repeatable; default queued)")
@click.option("--limit", "-l", type=click.IntRange(0, 100_000), default=200, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@click.option("--ids", "-i", "ids_only", is_flag=True, help="print only job ids")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
@_friendly
def list_(ctx: click.Context, queues: tuple[str, ...], states: tuple[str, ...], limit: int, offset: int,
          ids_only: bool, as_json: bool) -> None:
    """List jobs: one line per job, "<created> <id> <queue> "<title>"" (CKAN's format)."""
    wanted: list[str] | None = []
    for state in states or (QUEUED,):
        if state == "all":
            wanted = None
            break
        assert wanted is not None
        wanted.extend(PENDING_STATES if state == "pending" else [state])
    jobs = _app(ctx).list_jobs(list(queues) or None, wanted, limit, offset)
    if as_json:
        click.echo(json.dumps([j.to_dict() for j in jobs], indent=2))
        return
    if not jobs:
        click.echo("There are no pending jobs." if wanted == [QUEUED] else "There are no matching jobs.")
        return
    for job in jobs:
        if ids_only:
            click.echo(job.id)
        else:
            title = f' "{job.title}"' if job.title else ""
            state = "" if wanted == [QUEUED] else f" [{job.state}]"
            click.echo(f"{_created(job)} {job.id} {job.queue}{title}{state}")


def _bar(progress: dict[str, Any]) -> str:
    done, total, message = progress.get("done"), progress.get("total"), progress.get("message")
    suffix = f" {message}" if message else ""
    if isinstance(done, (int, float)) and isinstance(total, (int, float)) and total > 0:
        share = max(0.0, min(1.0, done / total))
        filled = int(share * 30)
        return f"[{'#' * filled}{'.' * (30 - filled)}] {share:4.0%} ({done:g}/{total:g}){suffix}"
    return f"{done}{suffix}"


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
@_friendly
def show(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Show one job, with its result or error."""
    job = _app(ctx).get_job(job_id)
    if as_json:
        click.echo(json.dumps(job.to_dict(), indent=2))
        return
    lines = [
        f"ID:       {job.id}",
        f"Title:    {json.dumps(job.title) if job.title is not None else 'None'}",
        f"Created:  {_created(job)}",
        f"Queue:    {job.queue}",
        f"State:    {job.state}",
        f"Function: {job.target}",
        f"Attempts: {job.attempts} of {job.max_attempts}",
    ]
    try:
        lines.append(f"Args:     {codec.dumps(job.args)}  Kwargs: {codec.dumps(job.kwargs)}")
    except OffloadError:
        lines.append(f"Payload:  {job.payload[:500]}")
    if job.run_at and job.state == "scheduled":
        lines.append(f"Runs at:  {_time(job.run_at)}")
    lines += [f"Started:  {_time(job.started_at)}", f"Ended:    {_time(job.ended_at)}"]
    if job.worker:
        lines.append(f"Worker:   {job.worker}")
    if job.progress:
        lines.append(f"Progress: {_bar(job.progress)}")
    if job.result_json is not None:
        lines.append(f"Result:   {job.result_json[:2000]}")
    if job.error:
        lines.append(f"Error:    {job.error.get('type')}: {job.error.get('message')} ({job.error.get('reason')})")
        if job.error.get("traceback"):
            lines.append(str(job.error["traceback"]).rstrip())
    if len(job.errors) > 1 or (job.errors and job.state != "failed"):
        lines.append("Attempts that failed:")
        for err in job.errors:
            lines.append(f"  #{err.get('attempt', '?')} {err.get('type')}: {err.get('message')}")
    click.echo("\n".join(lines))


# -- managing ---------------------------------------------------------------------------------------------------
@main.command()
@click.argument("job_id")
@click.pass_context
@_friendly
def cancel(ctx: click.Context, job_id: str) -> None:
    """Cancel a job (a running job's process is stopped)."""
    _app(ctx).cancel(job_id)
    click.echo(f"Cancelled job {job_id}")


@main.command()
@click.argument("job_id")
@click.pass_context
@_friendly
def retry(ctx: click.Context, job_id: str) -> None:
    """Queue a failed or canceled job again."""
    _app(ctx).retry(job_id)
    click.echo(f"Requeued job {job_id}")


@main.command()
@click.argument("queues", nargs=-1)
@click.pass_context
@_friendly
def clear(ctx: click.Context, queues: tuple[str, ...]) -> None:
    """Delete the waiting jobs of QUEUES (default: all queues)."""
    app = _app(ctx)
    names = list(queues) or app.queues()
    count = app.clear(names) if names else 0
    click.echo(f"Cleared queue(s) {', '.join(json.dumps(q) for q in names)} ({count} job(s))")


@main.command()
@click.argument("queues", nargs=-1)
@click.pass_context
@_friendly
def test(ctx: click.Context, queues: tuple[str, ...]) -> None:
    """Enqueue a test job on each of QUEUES (default: "default")."""
    app = _app(ctx)
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


@main.command()
@click.argument("path")
@click.option("--args", "args_json", help='positional arguments as a JSON array, e.g. \'[1, "a"]\'')
@click.option("--kwargs", "kwargs_json", help="keyword arguments as a JSON object")
@click.option("--queue", "-q", default="default", show_default=True)
@click.option("--title", "-t")
@click.option("--timeout", type=float, help="seconds (-1: no limit)")
@click.option("--delay", type=click.FloatRange(0), help="run after this many seconds")
@click.option("--json", "as_json", is_flag=True, help="print the job as JSON")
@click.pass_context
@_friendly
def enqueue(ctx: click.Context, path: str, args_json: str | None, kwargs_json: str | None, queue: str,
            title: str | None, timeout: float | None, delay: float | None, as_json: bool) -> None:
    """Enqueue the function at import PATH ("package.module:function")."""
    args = _json_arg(args_json, "--args", list)
    kwargs = _json_arg(kwargs_json, "--kwargs", dict)
    job = _app(ctx).enqueue(path, args, kwargs, title=title, queue=queue, timeout=timeout, delay=delay)
    if as_json:
        click.echo(json.dumps(job.to_dict(), indent=2))
    elif job.duplicate:
        click.echo(f'Job {job.id} is already pending on queue "{job.queue}"')
    else:
        click.echo(f'Added job {job.id} to queue "{queue}"')


@main.command()
@click.option("--older-than", type=float, help="seconds (default offload.jobs.keep)")
@click.pass_context
@_friendly
def purge(ctx: click.Context, older_than: float | None) -> None:
    """Delete finished, failed and canceled jobs older than the retention period now."""
    count = _app(ctx).purge(older_than)
    click.echo(f"Purged {count} job(s)")


@main.command()
@click.pass_context
@_friendly
def migrate(ctx: click.Context) -> None:
    """Create or upgrade the store's schema (workers also do this at start)."""
    version = _app(ctx).store.migrate()
    click.echo(f"Store schema at version {version}")


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_friendly
def queues(ctx: click.Context, as_json: bool) -> None:
    """Jobs per queue and state."""
    counts = _app(ctx).store.counts()
    if as_json:
        click.echo(json.dumps(counts, indent=2, sort_keys=True))
        return
    if not counts:
        click.echo("There are no queues with jobs.")
        return
    click.echo(f"{'queue':20} " + " ".join(f"{s:>9}" for s in STATES))
    for name in sorted(counts):
        click.echo(f"{name:20} " + " ".join(f"{counts[name].get(s, 0):>9}" for s in STATES))


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_friendly
def workers(ctx: click.Context, as_json: bool) -> None:
    """Workers seen in the last 30 seconds."""
    found = _app(ctx).workers()
    if as_json:
        click.echo(json.dumps([w.to_dict() for w in found], indent=2))
        return
    if not found:
        click.echo("There are no running workers.")
    for w in found:
        click.echo(f"{w.id} pid={w.pid} queues={','.join(w.queues)} concurrency={w.concurrency} "
                   f"processed={w.processed} failed={w.failed} running={len(w.jobs)}")


@main.command("tasks")
@click.option("--import", "imports", multiple=True, help="also import this module; repeatable")
@click.pass_context
@_friendly
def list_tasks(ctx: click.Context, imports: tuple[str, ...]) -> None:
    """Registered tasks and where each came from."""
    from offload import tasks

    conf = _app(ctx).config
    tasks.load_registry([*conf["offload.tasks.imports"], *imports])
    found = tasks.registered()
    if not found:
        click.echo("No tasks are registered.")
        return
    for name in sorted(found):
        task = found[name]
        origin = tasks.origin(task)
        extra = "".join(f" {k}={v}" for k, v in (("queue", task.queue), ("timeout", task.timeout),
                                                  ("max_retries", task.max_retries)) if v is not None)
        click.echo(f"{name}  ->  {task.source}:{task.fn.__qualname__}  [{origin}]{extra}")


@main.command("schedules")
@click.option("--import", "imports", multiple=True, help="also import this module; repeatable")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_friendly
def list_schedules(ctx: click.Context, imports: tuple[str, ...], as_json: bool) -> None:
    """Periodic jobs with their last and next run."""
    import time

    from offload import schedule, tasks

    app = _app(ctx)
    tasks.load_registry([*app.config["offload.tasks.imports"], *imports])
    found = schedule.all_schedules(app)
    runs = app.store.schedule_runs()
    now = time.time()
    rows = []
    for name in sorted(found):
        s = found[name]
        last = runs.get(name)
        rows.append({**s.to_dict(), "spec": s.spec, "last_run": last.last_slot if last else None,
                     "last_job_id": last.job_id if last else None, "next_run": s.next_slot(now)})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No periodic jobs are declared.")
        return
    for row in rows:
        click.echo(f"{row['name']}  {row['spec']}  -> {row['task'] or row['func']}  last: {_time(row['last_run'])}"
                   f"  next: {_time(row['next_run'])}")


@main.command("config")
@click.pass_context
@_friendly
def show_config(ctx: click.Context) -> None:
    """Print the resolved settings and where each came from (secrets hidden)."""
    from offload.stores import redact_url

    conf = _app(ctx).config
    for key in sorted(conf):
        value = conf[key]
        if key == "offload.api.tokens":
            value = [f"***:{t.rpartition(':')[2]}" for t in value]
        elif key == "offload.store":
            value = redact_url(value)
        click.echo(f"{key} = {value!r}  ({conf.source(key)})")


@main.command()
@click.option("--jobs", "count", type=click.IntRange(1, 100_000), default=20, show_default=True)
@click.option("--concurrency", "-n", type=click.IntRange(1, 64), default=2, show_default=True)
@click.pass_context
@_friendly
def demo(ctx: click.Context, count: int, concurrency: int) -> None:
    """Enqueue demo jobs (some succeed, one fails, one times out) and run a burst worker on them."""
    from offload.demo import run_demo

    sys.exit(run_demo(_app(ctx), count, concurrency))


from offload.web.commands import serve, token  # noqa: E402

main.add_command(serve)
main.add_command(token)


from offload.events_cli import consumers, webhooks  # noqa: E402

main.add_command(consumers)
main.add_command(webhooks)


if __name__ == "__main__":
    main()
