"""What ``pip install offload`` brings: the webhook delivery client is part of the core install."""

from __future__ import annotations

from importlib.metadata import metadata, requires


def test_httpx_is_a_core_dependency() -> None:
    # Webhooks are the headline use: with httpx only in an extra, a webhook could be added and every delivery then
    # failed ("webhook deliveries need httpx"), retried 12 times.
    core = [r for r in requires("offload") or [] if "extra ==" not in r]
    assert any(r.replace(" ", "").startswith("httpx>=") for r in core), core


def test_the_webhooks_extra_still_installs() -> None:
    assert "webhooks" in (metadata("offload").get_all("Provides-Extra") or [])  # pip install offload[webhooks]
    assert [r for r in requires("offload") or [] if 'extra == "webhooks"' in r] == []  # ... adds nothing now
