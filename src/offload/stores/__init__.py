"""Storage engines, chosen by URL scheme: ``sqlite://``, ``redis://`` (and ``rediss://``, ``unix://``,
``redis+sentinel://``), ``postgresql://``, ``memory://``."""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from offload.errors import StoreDriverMissing, StoreURLError
from offload.stores.base import Store, redact_url

__all__ = ["ENGINES", "Store", "open_store", "redact_url", "store_class"]

# scheme -> (module, class, driver module, extra to install)
ENGINES: dict[str, tuple[str, str, str | None, str | None]] = {
    "memory": ("offload.stores.memory", "MemoryStore", None, None),
    "sqlite": ("offload.stores.sqlite", "SQLiteStore", None, None),
    # redis-py (with hiredis) makes the Redis store's connections: TCP, TLS, unix sockets, Sentinel.
    **{scheme: ("offload.stores.redis", "RedisStore", "redis", "redis")
       for scheme in ("redis", "rediss", "unix", "redis+unix", "redis+sentinel", "rediss+sentinel", "redis+cluster",
                     "rediss+cluster")},
    "postgresql": ("offload.stores.postgres", "PostgresStore", "psycopg", "postgres"),
    "postgres": ("offload.stores.postgres", "PostgresStore", "psycopg", "postgres"),
}


def store_class(url: str) -> type[Store]:
    if not isinstance(url, str) or "://" not in url:
        raise StoreURLError(
            f"invalid store URL {redact_url(str(url))!r}: use sqlite:///path, redis://host:6379/0, "
            "postgresql://host/db or memory://"
        )
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ENGINES:
        raise StoreURLError(
            f"unknown store URL scheme {scheme!r} in {redact_url(url)!r}; "
            f"known: {', '.join(sorted(ENGINES))}"
        )
    module_name, class_name, driver, extra = ENGINES[scheme]
    if driver is not None:
        try:
            importlib.import_module(driver)
        except ImportError:
            raise StoreDriverMissing(
                f"the {scheme}:// store needs the {driver!r} package: pip install 'offload[{extra}]'"
            ) from None
    cls: type[Store] = getattr(importlib.import_module(module_name), class_name)
    return cls


def open_store(url: str, site_id: str = "default") -> Store:
    """Create the engine for ``url`` and open it (connect, migrate)."""
    store = store_class(url)(url, site_id)
    store.open()
    return store
