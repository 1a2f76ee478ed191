"""offload's dashboard inside CKAN, at ``/ckan-admin/offload/``, for sysadmins.

The dashboard is offload's own WSGI app (``offload.web.create_app``) on the site's store; CKAN's session
decides who may see it: a sysadmin is signed in to the dashboard with a token that exists only inside this
process, anyone else gets CKAN's 403 page. Its session secret is derived from CKAN's ``SECRET_KEY``, so forms
keep working across CKAN's processes.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from typing import Any

import ckan.plugins.toolkit as tk
from flask import Blueprint, Response, request

from offload.app import Offload
from offload.contrib.ckan.site import offload_settings, site_id, store_url

URL_PREFIX = "/ckan-admin/offload"
SYSADMIN_FLAG = "offload.ckan.sysadmin"

_apps: dict[int, Any] = {}
_lock = threading.Lock()


def _dashboard_app() -> Any:
    """offload's Flask app for this site, built once per process."""
    import os

    app = _apps.get(os.getpid())
    if app is None:
        with _lock:
            app = _apps.get(os.getpid())
            if app is None:
                app = _apps[os.getpid()] = _build()
    return app


def _build() -> Any:
    from offload.web import create_app
    from offload.web.dashboard import sign_in

    token = secrets.token_urlsafe(32)
    secret = hashlib.sha256(f"offload-dashboard:{tk.config.get('SECRET_KEY')}".encode()).hexdigest()
    settings = {k.replace(".", "__"): v for k, v in offload_settings().items()}
    settings.update(api__tokens=[f"{token}:admin"], web__secret=secret)
    web = create_app(Offload(store=store_url(), site_id=site_id(), **settings))

    @web.before_request
    def sign_in_sysadmin() -> None:
        if request.environ.get(SYSADMIN_FLAG):
            sign_in(token)

    return web


def blueprint() -> Blueprint:
    bp = Blueprint("offload_ckan_dashboard", __name__, url_prefix=URL_PREFIX)

    @bp.route("/", defaults={"path": ""}, methods=["GET", "POST"])
    @bp.route("/<path:path>", methods=["GET", "POST"])
    def dashboard(path: str) -> Any:
        user = tk.current_user
        if not getattr(user, "sysadmin", False):
            return tk.abort(403, tk._("Only sysadmins may see background jobs"))
        from werkzeug.test import run_wsgi_app

        environ = dict(request.environ)
        environ["SCRIPT_NAME"] = request.script_root + URL_PREFIX
        environ["PATH_INFO"] = "/" + path
        environ[SYSADMIN_FLAG] = True
        body, status, headers = run_wsgi_app(_dashboard_app(), environ, buffered=True)
        return Response(body, status=status, headers=headers)

    return bp
