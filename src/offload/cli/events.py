"""``offload consumers`` and ``offload webhooks``: run and list consumers, manage webhook subscriptions."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

from offload.cli.common import app_for, setup_logging, time_text
from offload.errors import OffloadError

if TYPE_CHECKING:
    pass

F = TypeVar("F", bound=Callable[..., Any])


def _friendly(fn: F) -> F:
    """Unknown names and ids: one line on stderr, exit 1; other offload errors: click's error, exit 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from offload.events.consumers import ConsumerNotFound
        from offload.events.webhooks import WebhookNotFound

        try:
            return fn(*args, **kwargs)
        except (ConsumerNotFound, WebhookNotFound) as exc:
            click.echo(str(exc), err=True)
            sys.exit(1)
        except (OffloadError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


# -- consumers ---------------------------------------------------------------------------------------------------
@click.group()
def consumers() -> None:
    """Classes that receive events (offload.Consumer): list them, run workers for them."""


@consumers.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_friendly
def list_consumers(ctx: click.Context, as_json: bool) -> None:
    """Registered consumers, their queue, patterns and where they came from."""
    from offload.events.consumers import registered

    found = registered(app_for(ctx).config)
    rows: list[dict[str, Any]] = [
        {"name": c.name, "class": c.path, "queue": c.queue, "routing_keys": list(c.cls.routing_keys),
         "operations": None if c.cls.operations is None else list(c.cls.operations), "source": c.source}
        for c in found.values()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No consumers are registered.")
        return
    for row in rows:
        operations = ",".join(row["operations"]) if row["operations"] is not None else "*"
        click.echo(f"{row['name']}  ->  {row['class']}  queue={row['queue']}  "
                   f"routing_keys={','.join(row['routing_keys'])}  operations={operations}  [{row['source']}]")


@consumers.command("run")
@click.argument("names", nargs=-1)
@click.option("--all", "run_all", is_flag=True, help="run every registered consumer")
@click.option("--burst", is_flag=True, help="exit once their queues are empty")
@click.option("--concurrency", "-n", type=click.IntRange(1, 512), help="executor processes (default 1)")
@click.option("--threads", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="deliveries run at once inside each executor")
@click.option("--max-idle-time", type=click.FloatRange(0), help="exit after this many seconds without a job")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.pass_context
@_friendly
def run_consumers(ctx: click.Context, names: tuple[str, ...], run_all: bool, burst: bool, concurrency: int | None,
                  threads: int, max_idle_time: float | None, log_level: str | None) -> None:
    """Run a worker serving the queues of consumers NAMES (or --all)."""
    from offload.events.consumers import lookup, registered
    from offload.worker.supervisor import Supervisor, WorkerOptions

    app = app_for(ctx)
    conf = app.config
    found = registered(conf)
    if not found:
        click.echo("No consumers are registered (entry-point group offload.consumers, setting offload.consumers).",
                   err=True)
        sys.exit(1)
    if not names and not run_all:
        raise click.UsageError(f"name the consumers to run ({', '.join(found)}), or give --all")
    chosen = list(found) if run_all else [lookup(conf, name).name for name in dict.fromkeys(names)]
    level = (log_level or conf["offload.log.level"]).upper()
    setup_logging(level)
    options = WorkerOptions(
        queues=[found[name].queue for name in chosen],
        concurrency=concurrency or conf["offload.worker.concurrency"],
        threads=threads,
        burst=burst,
        lease=conf["offload.worker.lease"],
        grace=conf["offload.worker.grace"],
        max_jobs_per_child=conf["offload.worker.max_jobs_per_child"],
        max_memory_per_child=conf["offload.worker.max_memory_per_child"],
        keep=conf["offload.jobs.keep"],
        log_level=level,
        imports=list(conf["offload.tasks.imports"]),
        with_scheduler=False,
        max_idle_time=max_idle_time,
    )
    app.store.ping()
    sys.exit(Supervisor(app, options).run())


# -- webhooks ----------------------------------------------------------------------------------------------------
@click.group()
def webhooks() -> None:
    """Webhook subscriptions: signed HTTP POSTs of events."""


def _filters(record: dict[str, Any]) -> str:
    return f"{','.join(record.get('routing_keys') or ['*'])}:{','.join(record.get('operations') or ['*'])}"


@webhooks.command("add")
@click.argument("url")
@click.option("--routing-key", "-r", "routing_keys", multiple=True,
              help="routing-key pattern, e.g. Package or Resource* (repeatable; default *)")
@click.option("--operation", "-o", "operations", multiple=True,
              help="operation pattern, e.g. changed (repeatable; default *)")
@click.option("--description", "-d", default="", help="what the webhook is for")
@click.option("--secret", help="signing secret (default: a new random one, printed once)")
@click.option("--inactive", is_flag=True, help="add it disabled")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_friendly
def add_webhook(ctx: click.Context, url: str, routing_keys: tuple[str, ...], operations: tuple[str, ...],
                description: str, secret: str | None, inactive: bool, as_json: bool) -> None:
    """Subscribe URL to events. The secret is shown once, now."""
    from offload.events import webhooks as hooks

    record = hooks.add(app_for(ctx), url, list(routing_keys) or ["*"], list(operations) or ["*"], description,
                       secret, active=not inactive)
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    click.echo(f"Added webhook {record['id']} -> {record['url']} ({_filters(record)})")
    click.echo(f"Secret: {record['secret']}")
    click.echo("Store the secret with the receiver now: it is not shown again.")


@webhooks.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_friendly
def list_webhooks(ctx: click.Context, as_json: bool) -> None:
    """Every webhook: id, state, URL, filter and description."""
    from offload.events import webhooks as hooks

    app = app_for(ctx)
    records = [hooks.public_view(app, r) for r in hooks.list_all(app)]
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    if not records:
        click.echo("There are no webhooks.")
        return
    for r in records:
        state = "active" if r["active"] else "disabled"
        description = f' "{r["description"]}"' if r.get("description") else ""
        reason = f" ({r['disabled_reason']})" if not r["active"] and r.get("disabled_reason") else ""
        click.echo(f"{r['id']}  {state:8}  {r['url']}  {_filters(r)}{description}{reason}")


@webhooks.command("show")
@click.argument("webhook_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_friendly
def show_webhook(ctx: click.Context, webhook_id: str, as_json: bool) -> None:
    """One webhook, secret masked, with its delivery health."""
    from offload.events import webhooks as hooks

    app = app_for(ctx)
    view = hooks.public_view(app, hooks.get(app, webhook_id))
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    health = view["health"]
    lines = [
        f"ID:          {view['id']}",
        f"URL:         {view['url']}",
        f"Events:      routing keys {', '.join(view['routing_keys'])}; operations {', '.join(view['operations'])}",
        f"Description: {view.get('description') or '-'}",
        f"State:       {'active' if view['active'] else 'disabled'}",
        f"Secret:      {view['secret']}",
        f"Created:     {time_text(view.get('created_at'))}",
    ]
    if view.get("previous_secret"):
        until = time_text(view["previous_secret_expires_at"])
        lines.append(f"Old secret:  {view['previous_secret']} (signs until {until})")
    if not view["active"]:
        lines.append(f"Disabled:    {time_text(view.get('disabled_at'))}: {view.get('disabled_reason') or '-'}")
    lines.append(f"Failures:    {health.get('failures', 0)} consecutive failed deliveries"
                 + (f", failing since {time_text(health['failing_since'])}" if health.get("failing_since") else ""))
    lines.append(f"Last OK:     {time_text(health.get('last_success_at'))}")
    click.echo("\n".join(lines))


@webhooks.command("remove")
@click.argument("webhook_id")
@click.pass_context
@_friendly
def remove_webhook(ctx: click.Context, webhook_id: str) -> None:
    """Delete a webhook and its delivery log (its pending deliveries are skipped)."""
    from offload.events import webhooks as hooks

    record = hooks.remove(app_for(ctx), webhook_id)
    click.echo(f"Removed webhook {record['id']}")


@webhooks.command("enable")
@click.argument("webhook_id")
@click.pass_context
@_friendly
def enable_webhook(ctx: click.Context, webhook_id: str) -> None:
    """Enable a webhook again (its failure count starts over)."""
    from offload.events import webhooks as hooks

    record = hooks.set_active(app_for(ctx), webhook_id, True)
    click.echo(f"Enabled webhook {record['id']}")


@webhooks.command("disable")
@click.argument("webhook_id")
@click.option("--reason", help="shown in list and show")
@click.pass_context
@_friendly
def disable_webhook(ctx: click.Context, webhook_id: str, reason: str | None) -> None:
    """Stop deliveries to a webhook (events published meanwhile are not sent later)."""
    from offload.events import webhooks as hooks

    record = hooks.set_active(app_for(ctx), webhook_id, False, reason)
    click.echo(f"Disabled webhook {record['id']}")


@webhooks.command("rotate-secret")
@click.argument("webhook_id")
@click.option("--secret", help="the new secret (default: a new random one)")
@click.option("--overlap", default="24h", show_default=True,
              help="how long the old secret keeps signing too (30m, 24h, 7d)")
@click.pass_context
@_friendly
def rotate_webhook_secret(ctx: click.Context, webhook_id: str, secret: str | None, overlap: str) -> None:
    """Give a webhook a new secret; both sign deliveries until the overlap ends."""
    from offload.config import parse_duration
    from offload.events import webhooks as hooks

    record = hooks.rotate_secret(app_for(ctx), webhook_id, secret, parse_duration(overlap))
    click.echo(f"New secret of webhook {record['id']}: {record['secret']}")
    click.echo(f"The old secret signs too until {time_text(record['previous_secret_expires_at'])}.")


@webhooks.command("test")
@click.argument("webhook_id")
@click.option("--enqueue", is_flag=True, help="queue the test delivery for a worker instead of sending it now")
@click.pass_context
@_friendly
def test_webhook(ctx: click.Context, webhook_id: str, enqueue: bool) -> None:
    """Send a test event (routing key "offload", operation "test") to a webhook, even a disabled one."""
    from offload.events import webhooks as hooks

    app = app_for(ctx)
    if enqueue:
        job = hooks.send_test(app, webhook_id)
        click.echo(f'Added test delivery {job.id} to queue "{job.queue}"')
        return
    from offload.events import delivery
    from offload.retry import Retry

    record = hooks.get(app, webhook_id)
    try:
        result = delivery.deliver(app, hooks.make_test_event(), record["id"], test=True)
    except (hooks.DeliveryFailed, Retry) as exc:
        cause = exc.exc if isinstance(exc, Retry) and exc.exc is not None else exc
        click.echo(f"Test delivery to webhook {record['id']} failed: {cause}", err=True)
        sys.exit(1)
    click.echo(f"Delivered a test event to webhook {record['id']}: HTTP {result['status']} "
               f"in {result['latency_ms']:.0f} ms")


@webhooks.command("deliveries")
@click.argument("webhook_id")
@click.option("--limit", "-l", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_friendly
def list_deliveries(ctx: click.Context, webhook_id: str, limit: int, as_json: bool) -> None:
    """The last delivery attempts of a webhook, newest first."""
    from offload.events import webhooks as hooks

    entries = hooks.deliveries(app_for(ctx), webhook_id, limit)
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    if not entries:
        click.echo("There are no deliveries.")
        return
    for e in entries:
        status = e["status"] if e["status"] is not None else "-"
        detail = f"  {e['error']}" if e.get("error") else ""
        test = " [test]" if e.get("test") else ""
        click.echo(f"{time_text(e['at'])}  {e['routing_key']} {e['operation']}  event {e['event_id']}  "
                   f"attempt {e['attempt']}  {e['outcome']:9}  HTTP {status}  {e['latency_ms']:.0f} ms{detail}{test}")
