"""The ``offload`` command line: one group, its commands in the modules beside this one.

``jobs`` (list, show, cancel, retry, clear, test, enqueue, purge), ``worker``, ``admin`` (migrate, queues, workers,
pause, resume, limit, tasks, schedules, config, demo), ``info`` (queues and workers, --watch), ``events`` (consumers,
webhooks) and ``web`` (serve, token); ``table`` draws their tables. Output follows CKAN's ``ckan jobs`` where the
two overlap; ``common`` holds what they share.
"""

from __future__ import annotations

import click

from offload.cli import admin, events, info, jobs, task_status, web, worker


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


for command in (worker.worker, jobs.list_, jobs.show, jobs.cancel, jobs.retry, jobs.clear, jobs.test, jobs.enqueue,
                jobs.purge, admin.migrate, admin.queues, admin.pause, admin.resume, admin.limit, admin.workers,
                admin.list_tasks, admin.list_schedules, admin.show_config, admin.demo, web.serve, web.token,
                events.consumers, events.webhooks, task_status.task_status, info.info):
    main.add_command(command)

__all__ = ["main"]


if __name__ == "__main__":
    main()
