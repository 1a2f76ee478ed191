"""The ``offload`` CKAN plugin: the site's background jobs run on offload.

Enabled by ``ckan.plugins = offload ...`` (list it first). When CKAN loads it, the public names of
``ckan.lib.jobs`` (``enqueue``, ``get_queue``, ``Worker`` ...) and the toolkit's ``enqueue_job``,
``get_job_queue`` and ``job_from_id`` are replaced by those of ``offload.contrib.ckan.jobs``. CKAN reaches its
job system only through those names (``ckan.cli.jobs`` and ``ckan.logic.action`` hold the module, the toolkit
binds the three functions at import), so ``toolkit.enqueue_job``, the ``job_*`` actions and
``ckan jobs list|show|cancel|clear|test|worker`` work unchanged on offload's store.

It also adds offload's actions under an ``offload_`` prefix (``offload_job_list`` with states,
``offload_job_show`` with errors and tracebacks, ``offload_job_retry`` ...; sysadmins only), the
``ckan offload ...`` command (offload's command line on the site's store), and offload's dashboard at
``/ckan-admin/offload/`` for sysadmins.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

import ckan.plugins as p
import ckan.plugins.toolkit as tk

from offload.contrib.ckan.site import store_url

log = logging.getLogger(__name__)

#: Names of ``ckan.lib.jobs`` replaced by those of ``offload.contrib.ckan.jobs``.
JOBS_NAMES = ("DEFAULT_QUEUE_NAME", "DEFAULT_JOB_LIST_LIMIT", "add_queue_name_prefix", "remove_queue_name_prefix",
              "get_queue", "get_all_queues", "enqueue", "job_from_id", "dictize_job", "test_job", "Worker")
#: Toolkit names (bound at the toolkit's import) and the ``offload.contrib.ckan.jobs`` names they become.
TOOLKIT_NAMES = {"enqueue_job": "enqueue", "get_job_queue": "get_queue", "job_from_id": "job_from_id"}

_originals: dict[tuple[str, str], Any] = {}


def _swap(module: ModuleType, name: str, value: Any) -> None:
    _originals.setdefault((module.__name__, name), getattr(module, name))
    setattr(module, name, value)


def install() -> None:
    """Make ``ckan.lib.jobs`` and the toolkit's job functions offload's (idempotent); also the copies that
    extensions imported earlier (``from ckan.lib.jobs import get_queue`` in a module loaded before this plugin);
    make ``rq.get_current_job()`` see offload's running job, and the soft timeout raise RQ's
    ``JobTimeoutException``."""
    import ckan.config.environment as environment
    import ckan.lib.jobs as ckan_jobs

    from offload.contrib.ckan import jobs
    from offload.contrib.ckan.rq_job import install_current_job
    from offload.contrib.ckan.timeouts import install_timeout_exception

    for name in JOBS_NAMES:
        _swap(ckan_jobs, name, getattr(jobs, name))
    for toolkit_name, name in TOOLKIT_NAMES.items():
        _swap(tk, toolkit_name, getattr(jobs, name))
    _swap(environment, "is_redis_available", redis_check)
    by_name = {**{n: n for n in JOBS_NAMES}, **TOOLKIT_NAMES}
    _rebind_copies({id(value): (value, getattr(jobs, by_name[name])) for (module, name), value in _originals.items()
                    if module in (ckan_jobs.__name__, tk.__name__) and callable(value)})
    install_current_job()
    install_timeout_exception()


def _rebind_copies(replacements: dict[int, tuple[Any, Any]]) -> None:
    """Replace the RQ-era job functions that extension modules imported before the plugin was loaded bound to
    their own names (``from ckan.lib.jobs import get_queue``): ``replacements`` maps the id of each original to
    (original, offload's). Functions and classes only: constants such as the queue name are equal anyway."""
    import sys

    for module_name, module in list(sys.modules.items()):
        if not module_name.startswith("ckanext.") or module is None:
            continue
        for name, value in list(vars(module).items()):
            found = replacements.get(id(value))
            if found is not None and found[0] is value:
                _swap(module, name, found[1])


def uninstall() -> None:
    """Give ``ckan.lib.jobs``, the toolkit and the extensions rebound by ``install`` back their RQ functions (for
    tests that unload the plugin)."""
    import sys

    for (module_name, name), value in _originals.items():
        setattr(sys.modules[module_name], name, value)
    _originals.clear()


def redis_check() -> bool:
    """CKAN's start-up check for Redis, made only when the site still uses Redis (offload's store or the
    sessions): a site whose jobs are on PostgreSQL need not run Redis, nor be told it is missing."""
    from ckan.common import config

    if store_url().startswith(("redis:", "rediss:")) or config.get("SESSION_TYPE") == "redis":
        original = _originals.get(("ckan.config.environment", "is_redis_available"))
        if original is not None:
            return bool(original())
    return True


class OffloadPlugin(p.SingletonPlugin):  # type: ignore[misc]
    """Runs the site's background jobs on offload (see the module docstring)."""

    p.implements(p.IConfigurer)
    p.implements(p.IConfigDeclaration)
    p.implements(p.IActions)
    p.implements(p.IAuthFunctions)
    p.implements(p.IClick)
    p.implements(p.IBlueprint)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # As early as CKAN lets a plugin act: plugins listed after this one import CKAN's job functions
        # already replaced.
        install()

    # IConfigurer
    def update_config(self, config: Any) -> None:
        install()

    # IConfigDeclaration
    def declare_config_options(self, declaration: Any, key: Any) -> None:
        from offload.contrib.ckan.site import declare_options

        declare_options(declaration, key)

    # IActions / IAuthFunctions
    def get_actions(self) -> dict[str, Any]:
        from offload.contrib.ckan.actions import ckan_actions

        return ckan_actions()

    def get_auth_functions(self) -> dict[str, Any]:
        from offload.contrib.ckan.actions import ckan_auth_functions

        return ckan_auth_functions()

    # IClick
    def get_commands(self) -> list[Any]:
        from offload.contrib.ckan.cli import offload_command

        return [offload_command]

    # IBlueprint
    def get_blueprint(self) -> list[Any]:
        if not tk.asbool(tk.config.get("ckan.offload.dashboard", True)):
            return []
        from offload.contrib.ckan.dashboard import blueprint

        return [blueprint()]
