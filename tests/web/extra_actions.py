"""An action registered from outside offload.web, as later modules (webhooks) will do."""

from __future__ import annotations

from typing import Any

from offload.web.actions import ActionContext, String, action


@action("test_shout", role="read", params={"word": String(required=True, max_length=50, help="a word")},
        result={"type": "string"})
def test_shout(ctx: ActionContext, data: dict[str, Any]) -> str:
    """Return the word in capitals (a test of the open registry)."""
    word: str = data["word"]
    return word.upper() + "!"
