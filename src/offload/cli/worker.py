"""``offload worker``: a supervisor and its executors serving queues."""

from __future__ import annotations

import sys
import time

import click

from offload.cli.common import app_for, config_for, friendly, setup_logging
from offload.cli.progress import BurstProgress


# -- worker -----------------------------------------------------------------------------------------------------
@click.command()
@click.argument("queues", nargs=-1)
@click.option("--burst", is_flag=True, help="exit once the queues are empty")
@click.option("--concurrency", "-n", type=click.IntRange(1, 512), help="executor processes (default 1)")
@click.option("--threads", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="jobs run at once inside each executor (for I/O-bound jobs)")
@click.option("--lease", type=click.FloatRange(1), help="lease seconds (default offload.worker.lease)")
@click.option("--grace", type=click.FloatRange(0), help="warm shutdown grace seconds")
@click.option("--import", "imports", multiple=True, help="module to import in executors (tasks); repeatable")
@click.option("--path", "-P", "paths", multiple=True, default=["."], show_default=True,
              help="directory put first on the import path, so job modules there import; repeatable")
@click.option("--max-jobs-per-child", type=click.IntRange(0), help="recycle an executor after N jobs")
@click.option("--max-memory-per-child", type=click.IntRange(0), help="recycle an executor above N MiB")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--name", help="worker id (default host.pid.random)")
@click.option("--with-scheduler/--without-scheduler", default=True, show_default=True,
              help="enqueue periodic jobs when they are due")
@click.option("--no-scheduler", "no_scheduler", is_flag=True, hidden=True, help="same as --without-scheduler")
@click.option("--max-idle-time", type=click.FloatRange(0), help="exit after this many seconds without a job")
@click.pass_context
@friendly
def worker(ctx: click.Context, queues: tuple[str, ...], burst: bool, concurrency: int | None, threads: int,
           lease: float | None, grace: float | None, imports: tuple[str, ...], paths: tuple[str, ...],
           max_jobs_per_child: int | None, max_memory_per_child: int | None, log_level: str | None,
           name: str | None, with_scheduler: bool, no_scheduler: bool, max_idle_time: float | None) -> None:
    """Run a worker on QUEUES, earlier queues first (default: "default", "webhooks" and each consumer's queue:
    name the others, e.g. `offload worker mail default`, or `mail:default` as a systemd instance name gives them).
    Job modules are imported from the current directory (--path) and the usual import path."""
    from offload.jobs import check_queue_name
    from offload.worker.supervisor import (
        Supervisor,
        WorkerOptions,
        abandon_executors,
        apply_paths,
        boot_executors,
        start_executors,
    )

    conf = config_for(ctx)
    # One argument may list several, separated by ':' or ',' (neither can be in a queue name).
    queues = tuple(dict.fromkeys(part for arg in queues for part in arg.replace(",", ":").split(":") if part))
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
        dead_after=conf["offload.worker.dead_after"],
        host_id=conf["offload.worker.host_id"],
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
        timeout_grace=conf["offload.jobs.timeout_grace"],
        paths=list(paths),
    )
    apply_paths(options.paths)  # before the executors are configured: they take the supervisor's import path
    # The executors boot (an interpreter each; the offload command started them already), then load the job
    # modules while the supervisor loads the store's driver and connects.
    executors = boot_executors(options)
    try:
        start_executors(executors, options, conf)
        handler = setup_logging(level, quiet_jobs=burst and log_level is None)
        app = app_for(ctx)
        app.store.ping()
        supervisor = Supervisor(app, options, executors)
    except BaseException:
        abandon_executors(executors)
        raise
    if not burst:
        sys.exit(supervisor.run())
    started = time.monotonic()
    if sys.stderr.isatty():
        with BurstProgress(app, supervisor.opts.queues, supervisor.info) as progress:
            handler.addFilter(progress.clear_line)
            code = supervisor.run()
        handler.removeFilter(progress.clear_line)
    else:
        code = supervisor.run()
    info = supervisor.info
    # Always printed, whatever the log level: what a burst run did is its result.
    click.echo(f"Burst done: {info.processed} job(s) finished, {info.failed} failed in "
               f"{time.monotonic() - started:.1f} s", err=True)
    sys.exit(code)
