"""The default site: the ``Offload`` that the module-level functions (``offload.enqueue``, ...) act on.

Built from the configuration on first use (arguments to ``configure()``, then ``OFFLOAD_*`` environment variables,
then the ini file named by ``OFFLOAD_CONFIG``), so that importing offload opens nothing.
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False  # not typing's: importing typing costs every process ~10 ms, and this module is on every path
if TYPE_CHECKING:
    from typing import Any

    from offload.app import Offload
    from offload.config import Config

_default: Offload | None = None
_pending_config: Config | None = None
_lock = threading.Lock()


def _new_app(*args: Any, **kwargs: Any) -> Offload:
    from offload.app import Offload

    return Offload(*args, **kwargs)


def configure(*args: Any, **kwargs: Any) -> Offload:
    """Set the default site used by the module-level functions; takes ``Offload``'s arguments."""
    global _default
    with _lock:
        old, _default = _default, _new_app(*args, **kwargs)
    if old is not None:
        old.close()
    return _default


def configure_lazily(config: Config) -> None:
    """Make ``config`` the default site's configuration, built (and its store driver loaded) on first use."""
    global _default, _pending_config
    with _lock:
        _default, _pending_config = None, config


def default_app() -> Offload:
    """The default site, built from the environment and ini file on first use."""
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                _default = _new_app(config=_pending_config) if _pending_config is not None else _new_app()
    return _default


def swap(app: Offload | None) -> Offload | None:
    """Make ``app`` the default site (None: build one from the configuration on next use) and return the one it
    replaces, closing neither (test fixtures put the previous one back afterwards)."""
    global _default
    with _lock:
        old, _default = _default, app
    return old
