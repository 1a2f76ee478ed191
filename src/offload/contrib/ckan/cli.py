"""``ckan offload ...``: offload's command line on the site's store (from CKAN's config).

``ckan -c ckan.ini offload list --state failed``, ``... offload show ID`` (with the traceback of a failure),
``... offload retry ID``, ``... offload workers``, ``... offload worker -n 4`` (executors load CKAN's
environment) and the rest of ``offload --help``.
"""

from __future__ import annotations

import click

from offload.contrib.ckan.site import site_id, store_url

ENVIRONMENT_MODULE = "offload.contrib.ckan.environment"


@click.command("offload", context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
               add_help_option=False, short_help="offload's command line on this site's job store.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def offload_command(args: tuple[str, ...]) -> None:
    """offload's command line on this site's job store: ckan offload --help."""
    from offload.cli import main

    argv = list(args)
    if argv[:1] == ["worker"]:
        argv[1:1] = ["--import", ENVIRONMENT_MODULE]
    main.main(args=["--store", store_url(), "--site-id", site_id(), *argv], prog_name="ckan offload")
