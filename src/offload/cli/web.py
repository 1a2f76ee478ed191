"""``offload serve`` and ``offload token new``. Flask and waitress are imported inside ``serve`` only, so the
core command line works without the ``web`` extra."""

from __future__ import annotations

import ipaddress
import logging
import sys
from typing import TYPE_CHECKING, Any

import click

from offload.cli.common import app_for

if TYPE_CHECKING:
    pass

WEB_EXTRA_MISSING = "offload serve needs the web extra (Flask and waitress): pip install 'offload[web]'"


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (localhost, 127.0.0.0/8, ::1)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s"))
    for name in ("offload", "waitress"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


def _not_found(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"Not found\n"]


def _listening(server: Any) -> list[tuple[str, int]]:
    """The (host, port) pairs a waitress server listens on (one server, or several for a name like localhost)."""
    if hasattr(server, "effective_listen"):
        return [(str(entry[0]), int(entry[1])) for entry in server.effective_listen]
    return [(str(server.effective_host), int(server.effective_port))]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on; a non-loopback address needs offload.api.tokens")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="port (0: any free port, printed at start)")
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True,
              help="request threads")
@click.option("--prefix", default="", help="serve under this URL path, e.g. /offload")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, threads: int, prefix: str, log_level: str | None) -> None:
    """Serve the HTTP API and the dashboard with waitress."""
    try:
        import flask  # noqa: F401
        from waitress.server import create_server
    except ImportError:
        raise click.ClickException(WEB_EXTRA_MISSING) from None
    from offload.errors import OffloadError
    from offload.web import create_app

    prefix = prefix.rstrip("/")
    if prefix and not prefix.startswith("/"):
        raise click.BadParameter("must start with '/'", param_hint="--prefix")
    try:
        offload = app_for(ctx)
        if not offload.config["offload.api.tokens"]:
            if not is_loopback(host):
                raise click.ClickException(
                    f"refusing to listen on {host} without API tokens: set offload.api.tokens "
                    "(e.g. OFFLOAD_API_TOKENS=\"$(offload token new):admin\") or listen on 127.0.0.1"
                )
            click.echo("warning: no API tokens are configured (offload.api.tokens), so every request but "
                       "/healthz will be refused; create one with `offload token new`", err=True)
        _setup_logging((log_level or offload.config["offload.log.level"]).upper())
        offload.store.ping()
        app: Any = create_app(offload)
    except (OffloadError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if prefix:
        from werkzeug.middleware.dispatcher import DispatcherMiddleware

        app = DispatcherMiddleware(_not_found, {prefix: app})
    server = create_server(app, host=host, port=port, threads=threads, ident="offload")
    # One line per socket, on stdout, once it listens: with --port 0 this is how callers learn the port.
    for listen_host, listen_port in _listening(server):
        shown = f"[{listen_host}]" if ":" in listen_host else listen_host
        click.echo(f"Serving offload on http://{shown}:{listen_port}{prefix}/")
    sys.stdout.flush()
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        offload.close()


@click.group()
def token() -> None:
    """API tokens for the HTTP API and the dashboard."""


@token.command("new")
@click.option("--role", type=click.Choice(["admin", "read"]),
              help="print the token as a config entry, TOKEN:ROLE")
def new(role: str | None) -> None:
    """Print a fresh random token. Add it to offload.api.tokens as TOKEN:admin or TOKEN:read."""
    from offload.web.auth import new_token

    value = new_token()
    click.echo(f"{value}:{role}" if role else value)
