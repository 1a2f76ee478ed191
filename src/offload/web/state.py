"""What the Flask app keeps about its site: the ``Offload`` it manages and the token table."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from offload.app import Offload
from offload.web.auth import TokenTable

EXTENSION_KEY = "offload"


@dataclass
class WebState:
    offload: Offload
    tokens: TokenTable
    refresh_seconds: int = 5


def web_state() -> WebState:
    """The state of the offload app handling the current request."""
    state: WebState = current_app.extensions[EXTENSION_KEY]
    return state
