"""``offload webhooks ...`` in a subprocess: add (secret shown once), list/show (masked), test, deliveries,
enable/disable, rotate-secret, remove, and the error paths."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from offload import events
from offload.events import webhooks
from tests.events.conftest import EventWorkers, Receiver

MakeWorkers = Callable[..., EventWorkers]
Receivers = Callable[..., Receiver]


def test_webhooks_cli_lifecycle(make_workers: MakeWorkers, receivers: Receivers) -> None:
    w = make_workers()
    receiver = receivers()
    out = w.run_cli("webhooks", "add", receiver.url, "-r", "Package", "-r", "Resource*", "-o", "changed",
                    "-d", "mirror")
    assert out.returncode == 0, out.stderr
    match = re.match(r"Added webhook ([0-9a-f]{16}) -> (\S+) \(Package,Resource\*:changed\)\nSecret: (whsec_\S+)\n",
                     out.stdout)
    assert match is not None, out.stdout
    hook_id, url, secret = match.groups()
    assert url == receiver.url and "not shown again" in out.stdout

    listed = w.run_cli("webhooks", "list").stdout
    assert listed.startswith(f"{hook_id}  active    {receiver.url}  Package,Resource*:changed \"mirror\"")
    shown = w.run_cli("webhooks", "show", hook_id[:6]).stdout
    assert f"ID:          {hook_id}" in shown and f"Secret:      whsec_****{secret[-4:]}" in shown
    for text in (listed, shown, w.run_cli("webhooks", "show", hook_id, "--json").stdout,
                 w.run_cli("webhooks", "list", "--json").stdout):
        assert secret not in text

    tested = w.run_cli("webhooks", "test", hook_id)
    assert tested.returncode == 0 and re.match(rf"Delivered a test event to webhook {hook_id}: HTTP 200 in \d+ ms",
                                               tested.stdout), tested.stdout + tested.stderr
    [request] = receiver.requests
    body = webhooks.verify(request.headers, request.body, secret)
    assert (body["routing_key"], body["operation"]) == ("offload", "test")

    deliveries = w.run_cli("webhooks", "deliveries", hook_id).stdout
    assert "offload test" in deliveries and "delivered" in deliveries and "HTTP 200" in deliveries
    assert "[test]" in deliveries
    assert json.loads(w.run_cli("webhooks", "deliveries", hook_id, "--json").stdout)[0]["status"] == 200

    assert w.run_cli("webhooks", "disable", hook_id, "--reason", "maintenance").stdout == \
        f"Disabled webhook {hook_id}\n"
    assert "disabled  " in w.run_cli("webhooks", "list").stdout and "(maintenance)" in \
        w.run_cli("webhooks", "list").stdout
    assert events.notify(w.app, "Package", "changed", {}) == []
    assert w.run_cli("webhooks", "enable", hook_id).returncode == 0
    assert len(events.notify(w.app, "Resource", "changed", {})) == 1

    rotated = w.run_cli("webhooks", "rotate-secret", hook_id, "--overlap", "1h").stdout
    new_secret = re.search(r"(whsec_\S+)", rotated)
    assert new_secret is not None and new_secret.group(1) != secret
    assert webhooks.get(w.app, hook_id)["previous_secret"] == secret

    enqueued = w.run_cli("webhooks", "test", hook_id, "--enqueue").stdout
    assert re.fullmatch(r'Added test delivery [0-9a-f]{32} to queue "webhooks"\n', enqueued)

    assert w.run_cli("webhooks", "remove", hook_id).stdout == f"Removed webhook {hook_id}\n"
    assert w.run_cli("webhooks", "list").stdout == "There are no webhooks.\n"
    missing = w.run_cli("webhooks", "show", hook_id)
    assert missing.returncode == 1 and missing.stderr == f'There is no webhook with ID "{hook_id}"\n'


def test_webhooks_cli_errors(make_workers: MakeWorkers, receivers: Receivers) -> None:
    w = make_workers({"offload.webhooks.allowed_hosts": ""})
    refused = w.run_cli("webhooks", "add", "http://169.254.169.254/latest/")
    assert refused.returncode == 1 and "refused to deliver to 169.254.169.254" in refused.stderr
    assert "allowed_hosts" in refused.stderr
    bad = w.run_cli("webhooks", "add", "gopher://example.org/")
    assert bad.returncode == 1 and "use http:// or https://" in bad.stderr
    assert w.run_cli("webhooks", "deliveries", "abcdef").returncode == 1

    failing = receivers(default=500)
    hook = webhooks.add(w.app.__class__(store=w.url, site_id=w.site, webhooks__allowed_hosts="127.0.0.1"),
                        failing.url)
    out = w.run_cli("webhooks", "test", hook["id"])  # this CLI does not allow 127.0.0.1: refused on connect
    assert out.returncode == 1 and "refused to deliver to 127.0.0.1" in out.stderr
    allowed = make_workers()
    allowed.app.store.put_record(webhooks.KIND, hook["id"], hook)
    out = allowed.run_cli("webhooks", "test", hook["id"])
    assert out.returncode == 1 and "HTTP 500" in out.stderr and len(failing.requests) == 1
