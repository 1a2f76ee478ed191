"""offload's actions in CKAN's action API, as ``offload_<name>`` (``offload_job_list``, ``offload_job_show``,
``offload_job_retry`` ...): the same functions as offload's HTTP API, for sysadmins only.

Their errors become CKAN's: not found -> 404, invalid parameters -> 409 with ``{"field": ["message"]}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import ckan.plugins.toolkit as tk

from offload.contrib.ckan.site import site_app

PREFIX = "offload_"


def _sysadmins_only(context: Any, data_dict: Any) -> dict[str, Any]:
    # CKAN lets sysadmins through before asking this function.
    return {"success": False, "msg": "Only sysadmins may manage background jobs"}


def _from_text(data: Mapping[str, Any]) -> bool:
    """Whether the parameters came as text (a query string) rather than JSON values."""
    return all(isinstance(value, str) for value in data.values())


def _ckan_action(name: str) -> Callable[[Any, Any], Any]:
    from offload.web import actions as web

    act = web.get_action(name)

    def run(context: Any, data_dict: Any) -> Any:
        tk.check_access(PREFIX + name, context, data_dict)
        data = {k: v for k, v in dict(data_dict or {}).items() if not k.startswith("__")}
        try:
            return act(web.ActionContext(site_app(), "admin"), data, _from_text(data))
        except web.NotFound as exc:
            raise tk.ObjectNotFound(exc.detail) from None
        except web.ValidationError as exc:
            raise tk.ValidationError(exc.errors) from None
        except web.NotAuthorized as exc:
            raise tk.NotAuthorized(exc.detail) from None
        except web.ActionError as exc:
            raise tk.ValidationError({"message": [exc.message]}) from None

    run.__name__ = PREFIX + name
    run.__doc__ = act.help
    if act.side_effect_free:
        run = tk.side_effect_free(run)
    return run


def _names() -> list[str]:
    from offload.web.actions import load_action_modules, registered_actions

    load_action_modules()
    return [name for name in registered_actions() if name not in ("help_show", "action_list")]


def ckan_actions() -> dict[str, Callable[[Any, Any], Any]]:
    return {PREFIX + name: _ckan_action(name) for name in _names()}


def ckan_auth_functions() -> dict[str, Callable[[Any, Any], dict[str, Any]]]:
    return {PREFIX + name: _sysadmins_only for name in _names()}
