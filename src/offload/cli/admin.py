"""``offload migrate``, ``queues``, ``pause``, ``resume``, ``workers``, ``tasks``, ``schedules``, ``config`` and
``demo``: the store, the queues, the workers and the site's setup."""

from __future__ import annotations

import json
import sys
import time
from types import EllipsisType

import click

from offload.cli.common import app_for, friendly, time_text
from offload.cli.info import queue_table, worker_table
from offload.cli.table import colour_on
from offload.jobs import check_queue_name


@click.command()
@click.pass_context
@friendly
def migrate(ctx: click.Context) -> None:
    """Create or upgrade the store's schema (workers also do this at start)."""
    version = app_for(ctx).store.migrate()
    click.echo(f"Store schema at version {version}")


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@friendly
def queues(ctx: click.Context, as_json: bool) -> None:
    """Jobs per queue and state, which queues are paused and their concurrency limits (JSON: ``"paused": true``
    and ``"concurrency_limit": N`` in a queue's counts)."""
    app = app_for(ctx)
    counts: dict[str, dict[str, object]] = {name: dict(n) for name, n in app.store.counts().items()}
    paused = app.paused()
    for name in paused:
        counts.setdefault(name, {})["paused"] = True
    for name, n in app.limits().items():
        counts.setdefault(name, {})["concurrency_limit"] = n
    for name, n in app.key_limits().items():
        counts.setdefault(name, {})["key_concurrency_limit"] = n
    if as_json:
        click.echo(json.dumps(counts, indent=2, sort_keys=True))
        return
    now = time.time()
    colour = colour_on()
    click.echo("\n".join(queue_table(app_for(ctx), now, app_for(ctx).workers(), colour)), color=colour)


@click.command()
@click.argument("queue")
@click.pass_context
@friendly
def pause(ctx: click.Context, queue: str) -> None:
    """Pause QUEUE: every worker stops taking its jobs within a second (running ones finish) until `offload
    resume QUEUE`. Jobs can still be enqueued into it."""
    if app_for(ctx).pause(queue):
        click.echo(f'Paused queue "{queue}"')
    else:
        click.echo(f'Queue "{queue}" was paused already')


def limit_text(queue: str, concurrency: int | None, key_concurrency: int | None) -> str:
    parts = [f"at most {concurrency} at once" if concurrency else "no concurrency limit"]
    if key_concurrency:
        parts.append(f"at most {key_concurrency} per limit key")
    return f'Queue "{queue}": ' + ", ".join(parts)


@click.command()
@click.argument("queue")
@click.option("--concurrency", type=int, default=None, help="run at most N jobs of QUEUE at once, across all workers")
@click.option("--no-concurrency", "clear", is_flag=True, help="remove the concurrency limit of QUEUE")
@click.option("--key-concurrency", type=int, default=None,
              help="run at most N jobs of QUEUE with one limit_key at once, across all workers")
@click.option("--no-key-concurrency", "clear_key", is_flag=True, help="remove the per-key limit of QUEUE")
@click.pass_context
@friendly
def limit(ctx: click.Context, queue: str, concurrency: int | None, clear: bool, key_concurrency: int | None,
          clear_key: bool) -> None:
    """Limit how many jobs of QUEUE run at once across every worker and host, and how many of those that share
    one limit_key (`enqueue(..., limit_key=...)`); stored in the store, obeyed by every worker's next claim. With
    no option, show the limits."""
    app = app_for(ctx)
    if (clear and concurrency is not None) or (clear_key and key_concurrency is not None):
        raise click.UsageError("give a limit or remove it, not both")
    new: int | EllipsisType | None = None if clear else ... if concurrency is None else concurrency
    new_key: int | EllipsisType | None = None if clear_key else ... if key_concurrency is None else key_concurrency
    if new is not ... or new_key is not ...:
        try:
            app.limit(queue, new, new_key)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    name = check_queue_name(queue)
    click.echo(limit_text(queue, app.limits().get(name), app.key_limits().get(name)))


@click.command()
@click.argument("queue")
@click.pass_context
@friendly
def resume(ctx: click.Context, queue: str) -> None:
    """Resume a paused QUEUE: workers take its jobs again."""
    if app_for(ctx).resume(queue):
        click.echo(f'Resumed queue "{queue}"')
    else:
        click.echo(f'Queue "{queue}" was not paused')


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@friendly
def workers(ctx: click.Context, as_json: bool) -> None:
    """Workers seen in the last 30 seconds."""
    found = app_for(ctx).workers()
    if as_json:
        click.echo(json.dumps([w.to_dict() for w in found], indent=2))
        return
    colour = colour_on()
    click.echo("\n".join(worker_table(found, time.time(), colour)), color=colour)


@click.command("tasks")
@click.option("--import", "imports", multiple=True, help="also import this module; repeatable")
@click.pass_context
@friendly
def list_tasks(ctx: click.Context, imports: tuple[str, ...]) -> None:
    """Registered tasks and where each came from."""
    from offload import registry

    conf = app_for(ctx).config
    registry.load_registry([*conf["offload.tasks.imports"], *imports])
    found = registry.registered()
    if not found:
        click.echo("No tasks are registered.")
        return
    for name in sorted(found):
        task = found[name]
        origin = registry.origin(task)
        extra = "".join(f" {k}={v}" for k, v in (("queue", task.queue), ("timeout", task.timeout),
                                                  ("max_retries", task.max_retries)) if v is not None)
        click.echo(f"{name}  ->  {task.source}:{task.fn.__qualname__}  [{origin}]{extra}")


@click.command("schedules")
@click.option("--import", "imports", multiple=True, help="also import this module; repeatable")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@friendly
def list_schedules(ctx: click.Context, imports: tuple[str, ...], as_json: bool) -> None:
    """Periodic jobs with their last and next run."""
    import time

    from offload import registry, schedule

    app = app_for(ctx)
    registry.load_registry([*app.config["offload.tasks.imports"], *imports])
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
        click.echo(f"{row['name']}  {row['spec']}  -> {row['task'] or row['func']}  last: {time_text(row['last_run'])}"
                   f"  next: {time_text(row['next_run'])}")


@click.command("config")
@click.pass_context
@friendly
def show_config(ctx: click.Context) -> None:
    """Print the resolved settings and where each came from (secrets hidden)."""
    from offload.stores import redact_url

    conf = app_for(ctx).config
    for key in sorted(conf):
        value = conf[key]
        if key == "offload.api.tokens":
            value = [f"***:{t.rpartition(':')[2]}" for t in value]
        elif key == "offload.store":
            value = redact_url(value)
        click.echo(f"{key} = {value!r}  ({conf.source(key)})")


@click.command()
@click.option("--jobs", "count", type=click.IntRange(1, 100_000), default=20, show_default=True)
@click.option("--concurrency", "-n", type=click.IntRange(1, 64), default=2, show_default=True)
@click.pass_context
@friendly
def demo(ctx: click.Context, count: int, concurrency: int) -> None:
    """Enqueue demo jobs (some succeed, one fails, one times out) and run a burst worker on them."""
    from offload.demo import run_demo

    sys.exit(run_demo(app_for(ctx), count, concurrency))
