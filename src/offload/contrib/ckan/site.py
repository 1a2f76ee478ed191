"""One CKAN site's view of offload: the store named by CKAN's config, the site id, and CKAN's queue name prefix.

Queue names follow CKAN: RQ-shaped objects carry the prefixed name (``ckan:<site_id>:<queue>``), offload stores
the plain one under the site id. Everything reads CKAN's config at call time, as CKAN does (with defaults, so that
no "Option ... is not declared" warning appears when the plugin's declarations are not loaded).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from ckan.common import config

from offload.app import Offload
from offload.config import SETTINGS

DEFAULT_QUEUE_NAME = "default"
#: How many attempts a CKAN job gets unless ``ckan.offload.jobs.max_attempts`` says otherwise: CKAN's jobs
#: were never retried, so they need not be idempotent.
DEFAULT_MAX_ATTEMPTS = 1

_apps: dict[tuple[str, str, int], Offload] = {}
_apps_lock = threading.Lock()


def store_url() -> str:
    """``ckan.offload.store`` if set, else ``ckan.redis.url`` (the Redis CKAN's RQ used)."""
    url = config.get("ckan.offload.store", "") or config.get("ckan.redis.url", "")
    if not url:
        raise RuntimeError("set ckan.offload.store (or ckan.redis.url) in CKAN's config to a store URL")
    return str(url)


def site_id() -> str:
    return str(config.get("ckan.site_id") or "default")


def offload_settings() -> dict[str, Any]:
    """offload settings given in CKAN's config as ``ckan.offload.<key>`` (``ckan.offload.jobs.keep = 3d``)."""
    settings: dict[str, Any] = dict(CKAN_DEFAULTS)
    for ckan_key in list(config):
        key = ckan_key[len("ckan."):] if ckan_key.startswith("ckan.offload.") else None
        if key in SETTINGS and key not in ("offload.store", "offload.site_id"):
            value = config[ckan_key]
            if value not in (None, ""):
                settings[key] = value if isinstance(value, str) else str(value)
    return settings


def site_app() -> Offload:
    """The ``Offload`` of this site's store, one per process (a forked web worker opens its own)."""
    key = (store_url(), site_id(), os.getpid())
    app = _apps.get(key)
    if app is None:
        with _apps_lock:
            app = _apps.get(key)
            if app is None:
                # Connections inherited from a parent process are left alone, not closed: closing them here
                # would close the parent's sockets too.
                for old in [k for k in _apps if k[2] != key[2]]:
                    del _apps[old]
                overrides = {k.replace(".", "__"): v for k, v in offload_settings().items()}
                app = _apps[key] = Offload(store=key[0], site_id=key[1], **overrides)
    return app


def queue_name_prefix() -> str:
    return f"ckan:{site_id()}:"


def add_queue_name_prefix(name: str) -> str:
    """``"default"`` -> ``"ckan:<site_id>:default"``."""
    return queue_name_prefix() + name


def remove_queue_name_prefix(name: str) -> str:
    """``"ckan:<site_id>:default"`` -> ``"default"``; ``ValueError`` for a name without this site's prefix."""
    prefix = queue_name_prefix()
    if not name.startswith(prefix):
        raise ValueError(f'Queue name "{name}" is not prefixed.')
    return name[len(prefix):]


#: CKAN's defaults where they differ from offload's own (see ``DEFAULT_MAX_ATTEMPTS``; a fresh fork of the worker
#: per job, as RQ's, see ``job_process``).
CKAN_DEFAULTS: dict[str, Any] = {"offload.jobs.max_attempts": DEFAULT_MAX_ATTEMPTS,
                                 "offload.worker.max_jobs_per_child": 1}


def declare_options(declaration: Any, key: Any) -> None:
    """Declare every ``ckan.offload.*`` option to CKAN (``IConfigDeclaration``), so that CKAN knows their
    defaults and types and logs no "Option ... is not declared" warning."""
    from offload.config import parse_bool, parse_int

    declaration.annotate("offload: background jobs")
    declaration.declare("ckan.offload.store", "").set_description(
        "offload store URL for the site's background jobs (sqlite:///..., postgresql://..., redis://...); "
        "empty: ckan.redis.url")
    declaration.declare_bool("ckan.offload.dashboard", True).set_description(
        "serve offload's dashboard at /ckan-admin/offload/ for sysadmins")
    declaration.declare_bool("ckan.offload.transactional", False).set_description(
        "enqueue through model.Session's transaction once it has written (store in CKAN's own PostgreSQL database)")
    for name, setting in SETTINGS.items():
        if name in ("offload.store", "offload.site_id"):
            continue  # ckan.offload.store above; the site id is ckan.site_id
        default = CKAN_DEFAULTS.get(name, setting.default)
        ckan_key = f"ckan.{name}"
        if setting.parse is parse_bool:
            option = declaration.declare_bool(ckan_key, bool(default))
        elif setting.parse is parse_int:
            option = declaration.declare_int(ckan_key, int(default))
        else:  # durations ("7d") and lists ("a, b") keep offload's syntax: declared as text
            text = ", ".join(default) if isinstance(default, list) else "" if default is None else f"{default:g}" \
                if isinstance(default, float) else str(default)
            option = declaration.declare(ckan_key, text)
        option.set_description(setting.help)
