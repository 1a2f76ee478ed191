"""The PostgreSQL store's URL and what the server's errors mean.

A store URL is a libpq URL plus offload's own query options, which are removed before libpq sees it:

- ``schema`` (default ``offload``): where offload's tables live.
- ``pooler`` (``none``, ``session``, ``transaction``, ``statement``): what sits between offload and PostgreSQL.
  ``transaction`` and ``statement`` (PgBouncer's pool modes of those names) make the store keep no state in a
  server session: no server-side prepared statements unless ``prepare_threshold`` asks for them, no ``SET``,
  no session advisory lock, no ``LISTEN`` through the pooler (see ``listen_url``), every verb one statement.
- ``listen_url``: a direct URL (percent-encoded) for the connection that LISTENs for wake-ups, bypassing the
  pooler. Without it, a pooled store polls (``poll`` seconds while work keeps coming, doubling to
  ``idle_poll`` once idle).
- ``prepare_threshold``: psycopg's (uses of a statement before it is prepared on the server; ``none``: never).
  Passed to ``psycopg.connect``; behind a transaction pooler it needs PgBouncer 1.21 or later with
  ``max_prepared_statements`` set.

Every other option (``sslmode``, ``target_session_attrs``, ``options`` ...) goes to libpq as it is.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from offload.errors import StoreURLError
from offload.stores.base import redact_url

SCHEMA_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
POOLERS = ("none", "session", "transaction", "statement")
OWN_OPTIONS = ("schema", "pooler", "listen_url", "prepare_threshold", "poll", "idle_poll")
#: Poll intervals when a pooled store has no listen URL: while work keeps coming, and at most once idle.
DEFAULT_POLL = 0.001
DEFAULT_IDLE_POLL = 0.05


@dataclass
class StoreURL:
    """A PostgreSQL store URL taken apart: what goes to libpq and psycopg, and offload's own options."""

    url: str
    conninfo: str
    schema: str = "offload"
    pooler: str = "none"
    listen_conninfo: str | None = None
    connect_options: dict[str, Any] = field(default_factory=dict)
    listen_options: dict[str, Any] = field(default_factory=dict)
    poll: float = DEFAULT_POLL
    idle_poll: float = DEFAULT_IDLE_POLL
    secrets: list[str] = field(default_factory=list)

    @property
    def pooled(self) -> bool:
        """True behind a transaction or statement pooler: no session state may outlive a statement."""
        return self.pooler in ("transaction", "statement")

    @property
    def polls(self) -> bool:
        """True when idle workers poll for work instead of waiting for a notification."""
        return self.pooled and self.listen_conninfo is None

    @property
    def safe(self) -> str:
        """The URL for logs and messages: every password hidden, the listen URL's too."""
        return self.hide(redact_url(self.url))

    def hide(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    @property
    def several_hosts(self) -> bool:
        """Whether libpq may choose among several hosts (``host1:port1,host2:port2`` or ``?host=a,b``)."""
        parts = urlsplit(self.conninfo)
        return "," in parts.netloc or "," in dict(parse_qsl(parts.query)).get("host", "")

    @property
    def session_attrs(self) -> str | None:
        return dict(parse_qsl(urlsplit(self.conninfo).query)).get("target_session_attrs")


def _password_forms(url: str) -> list[str]:
    """The password of ``url`` as it may appear in a message: as written, decoded, and encoded again."""
    password = urlsplit(url).password or ""
    forms = {password, unquote(password), quote(password, safe=""), quote(unquote(password), safe="")}
    return sorted((f for f in forms if f), key=len, reverse=True)


def _seconds(name: str, text: str, url: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= 60):
        raise StoreURLError(f"invalid {name}={text!r} in {url}: give seconds, more than 0 and at most 60")
    return value


def _prepare_threshold(text: str, url: str) -> int | None:
    if text.lower() in ("", "none", "null"):
        return None
    if not text.isdigit():
        raise StoreURLError(
            f"invalid prepare_threshold={text!r} in {url}: give a whole number of uses (0: prepare at once) "
            "or 'none' (never prepare)"
        )
    return int(text)


def parse_url(url: str) -> StoreURL:
    """Split a store URL into libpq's part and offload's options; StoreURLError names what is wrong."""
    parts = urlsplit(url)
    options = parse_qsl(parts.query, keep_blank_values=True)
    own = {key: value for key, value in options if key in OWN_OPTIONS}  # the last one given wins
    kept = [(key, value) for key, value in options if key not in OWN_OPTIONS]
    conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept, quote_via=quote), parts.fragment))
    listen = own.get("listen_url") or None
    secrets = _password_forms(url) + (_password_forms(listen) if listen else [])
    result = StoreURL(url=url, conninfo=conninfo, secrets=secrets)
    shown = result.safe  # libpq decodes %20 but not '+', hence quote_via=quote above
    result.schema = own.get("schema", "offload")
    if not SCHEMA_RE.fullmatch(result.schema):
        raise StoreURLError(
            f"invalid schema {result.schema!r} in {shown!r}: use letters, digits and '_' "
            "(at most 63, not starting with a digit)"
        )
    result.pooler = own.get("pooler", "none").lower() or "none"
    if result.pooler not in POOLERS:
        raise StoreURLError(
            f"invalid pooler={own['pooler']!r} in {shown}: use pooler=transaction or pooler=statement behind "
            "PgBouncer (or another pooler) in that pool mode, pooler=session or pooler=none otherwise"
        )
    if listen is not None:
        if urlsplit(listen).scheme not in ("postgresql", "postgres"):
            raise StoreURLError(
                f"invalid listen_url in {shown}: give a postgresql:// URL reaching the same database directly "
                "(not through a transaction pooler), percent-encoded as a query value"
            )
        result.listen_conninfo = listen
    result.poll = _seconds("poll", own["poll"], shown) if "poll" in own else DEFAULT_POLL
    result.idle_poll = _seconds("idle_poll", own["idle_poll"], shown) if "idle_poll" in own else DEFAULT_IDLE_POLL
    result.idle_poll = max(result.idle_poll, result.poll)
    given = {key for key, _ in kept}
    base: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in given:
        base["connect_timeout"] = 10
    if "application_name" not in given:
        base["application_name"] = "offload"
    result.listen_options = dict(base)
    result.connect_options = dict(base)
    if "prepare_threshold" in own:
        result.connect_options["prepare_threshold"] = _prepare_threshold(own["prepare_threshold"], shown)
    elif result.pooled:
        result.connect_options["prepare_threshold"] = None
    return result


# -- what a failure means --------------------------------------------------------------------------------
# SQLSTATEs that say "this server cannot serve us now" rather than "this statement is wrong": the store waits
# them out (StoreUnavailable) and connects again, perhaps to another host of the URL.
OUTAGE_STATES = frozenset((
    "25006",  # read_only_sql_transaction: a standby, or a primary being demoted
    "57P01",  # admin_shutdown: the server is stopping, or an administrator ended the connection
    "57P02",  # crash_shutdown: another server process crashed
    "57P03",  # cannot_connect_now: starting up, shutting down, in recovery
    "53300",  # too_many_connections
))


def is_outage(sqlstate: str | None) -> bool:
    """Whether an error with this SQLSTATE (None: no answer from a server at all) is an outage."""
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in OUTAGE_STATES


def advice(sqlstate: str | None, message: str, url: StoreURL) -> str:
    """What to do about an error: the sentence a message ends with ("" when there is nothing useful)."""
    if sqlstate in ("26000", "42P05") and "_pg3_" in message:
        return ("the connection goes through a transaction-pooling proxy (PgBouncer or similar), where a "
                "statement prepared on one server connection is missing on the next: add pooler=transaction "
                "(or pooler=statement) to the store URL")
    if sqlstate == "25006":
        hint = "the server accepts no writes (a standby, or a primary being demoted); the next call connects again"
        if url.several_hosts and url.session_attrs not in ("read-write", "primary"):
            hint += ("; the URL lists several hosts: add target_session_attrs=read-write so that only the "
                     "primary is chosen")
        return hint
    if sqlstate is not None and is_outage(sqlstate):
        return "the next call connects again"
    if sqlstate in ("28P01", "28000"):
        return "check the user and password of the store URL (or PGPASSWORD, ~/.pgpass) and pg_hba.conf"
    if sqlstate == "3D000":
        return "create that database, or name an existing one in the store URL"
    if sqlstate == "42501":
        return (f"grant the store's user rights on schema {url.schema!r} and its tables, or run "
                "`offload migrate` once as a user that may create them")
    if sqlstate in ("42P01", "3F000"):
        return f"the tables of schema {url.schema!r} are missing: run `offload migrate` with this store URL"
    if sqlstate == "57014":
        return "a statement_timeout or an administrator canceled the statement; raise statement_timeout for offload"
    if sqlstate in ("40001", "40P01"):
        return "a conflict with another transaction; try again"
    return ""


def reason(exc: BaseException, url: StoreURL) -> str:
    """An error's whole text on one line, passwords hidden (libpq's messages can list every host tried). A
    line libpq indents continues the sentence before it; other lines are joined with "; "."""
    text = ""
    for line in str(exc).splitlines():
        if line.strip():
            text += (" " if line[:1].isspace() else "; ") * bool(text) + line.strip()
    return url.hide(text or type(exc).__name__)
