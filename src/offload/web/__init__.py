"""offload's HTTP API and dashboard (the ``web`` extra: ``pip install 'offload[web]'``).

    from offload.web import create_app
    app = create_app(Offload(store="postgresql://..."))      # a WSGI app; mount it anywhere

Flask is imported only when an app is built, so ``offload.web.commands`` can be imported (by the CLI)
without the extra installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from offload.app import Offload

__all__ = ["create_app"]


def create_app(offload_app: Offload | None = None, config: Mapping[str, Any] | None = None) -> Flask:
    """The WSGI app serving the API (``/api/3/action/<name>``, ``/api/3/openapi.json``, ``/healthz``,
    ``/metrics``) and the dashboard (``/``) for ``offload_app`` (default: ``Offload()`` from the
    configuration). ``config`` overrides Flask settings (``SESSION_COOKIE_SECURE``, ...).

    The session secret is ``offload.web.secret``; without it a random one is made per process, so
    dashboard sessions end when the process restarts (and are not shared between processes)."""
    from offload.web.application import build_app

    return build_app(offload_app, config)
