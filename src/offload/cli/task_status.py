"""``offload task-status ENTITY_TYPE ENTITY_ID [TASK_TYPE]``: the latest job of a task type for an entity (state,
error, time), or every task type of the entity; see ``offload.taskstatus``."""

from __future__ import annotations

import json
from typing import Any

import click

from offload.cli.common import app_for, friendly, time_text


def _lines(status: dict[str, Any]) -> list[str]:
    lines = [
        f"Task:     {status['task_type']} for {status['entity_type']} {status['entity_id']}",
        f"Job:      {status['job_id']}",
        f"State:    {status['state']}",
        f"Updated:  {time_text(status.get('last_updated'))}",
        f"Attempts: {status.get('attempts')} of {status.get('max_attempts')}",
    ]
    error = status.get("error")
    if error:
        lines.append(f"Error:    {error.get('type')}: {error.get('message')}")
    return lines


@click.command("task-status")
@click.argument("entity_type")
@click.argument("entity_id")
@click.argument("task_type", required=False)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.pass_context
@friendly
def task_status(ctx: click.Context, entity_type: str, entity_id: str, task_type: str | None, as_json: bool) -> None:
    """The latest job of TASK_TYPE for an entity (all task types without TASK_TYPE): its state, error and time.
    Exit code 1 when there is none."""
    app = app_for(ctx)
    statuses: list[dict[str, Any]]
    if task_type is None:
        statuses = app.task_statuses(entity_type, entity_id)
    else:
        found = app.task_status(entity_type, entity_id, task_type)
        statuses = [] if found is None else [found]
    if as_json:
        click.echo(json.dumps(statuses if task_type is None else (statuses[0] if statuses else None), indent=2))
    else:
        blocks = ["\n".join(_lines(status)) for status in statuses]
        if blocks:
            click.echo("\n\n".join(blocks))
    if not statuses:
        what = f"no {task_type} job" if task_type else "no task status"
        click.echo(f"There is {what} for {entity_type} {entity_id}.", err=True)
        ctx.exit(1)
