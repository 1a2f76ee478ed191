"""The destination guard: internal addresses are refused unless allow-listed, at add time for literal
addresses and at connect time (on the address actually connected to) for everything."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

import pytest

from offload import Offload, events
from offload.events import webhooks
from offload.events.delivery import guarded_client, post
from offload.jobs import FAILED, FINISHED
from offload.webhooks import DestinationPolicy, DestinationRefused
from tests.events.conftest import EventWorkers, Receiver

MakeWorkers = Callable[..., EventWorkers]
Receivers = Callable[..., Receiver]

INTERNAL = ["http://127.0.0.1/hook", "http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data/",
            "http://[::1]:8080/hook"]


def _app(tmp_path: object, allowed: str = "") -> Offload:
    return Offload(store=f"sqlite:///{tmp_path}/ssrf.db", webhooks__allowed_hosts=allowed)


@pytest.mark.parametrize("url", [*INTERNAL, "http://2130706433/", "http://0x7f.1/", "https://[::ffff:10.0.0.1]/",
                                 "http://224.0.0.1/", "http://0.0.0.0:80/"])
def test_literal_internal_addresses_are_refused_when_added(tmp_path: object, url: str) -> None:
    app = _app(tmp_path)
    with pytest.raises(DestinationRefused, match="allowed_hosts"):
        webhooks.add(app, url)
    assert webhooks.list_all(app) == []


def test_allow_listed_addresses_hosts_and_networks_can_be_added(tmp_path: object) -> None:
    app = _app(tmp_path, "127.0.0.1, 10.0.0.0/8, 169.254.169.254, ::1")
    for url in INTERNAL:
        assert webhooks.add(app, url)["url"] == url
    assert webhooks.add(app, "http://localhost:9/")  # a name is checked when connecting, not now
    with pytest.raises(ValueError, match="http"):
        webhooks.add(app, "ftp://example.org/")


@pytest.mark.parametrize("url", INTERNAL)
def test_deliveries_to_internal_addresses_are_refused_without_connecting(url: str) -> None:
    client = guarded_client(DestinationPolicy(), timeout=5)
    started = time.monotonic()
    attempt = post(client, url, b"{}", {}, time.monotonic() + 5)
    assert attempt.status is None and not attempt.retryable
    assert attempt.error is not None and "refused to deliver" in attempt.error
    assert time.monotonic() - started < 1, "no connection was attempted"


def _resolver(name: str, address: str) -> Callable[[str, int], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        assert host == name
        return [ipaddress.ip_address(address)]

    return resolve


def test_a_name_resolving_to_loopback_is_refused_unless_allowed(receivers: Receivers) -> None:
    receiver = receivers()
    url = f"http://hooks.internal.test:{receiver.port}/hook"
    resolve = _resolver("hooks.internal.test", "127.0.0.1")
    refused = post(guarded_client(DestinationPolicy(), 5, resolve), url, b"{}", {}, time.monotonic() + 5)
    assert refused.error is not None and "hooks.internal.test (127.0.0.1)" in refused.error
    assert receiver.requests == []
    for allowed in ("127.0.0.1", "127.0.0.0/8", "hooks.internal.test"):
        policy = DestinationPolicy.from_entries([allowed])
        assert post(guarded_client(policy, 5, resolve), url, b"{}", {}, time.monotonic() + 5).status == 200
    assert len(receiver.requests) == 3
    assert receiver.requests[0].headers["Host"] == f"hooks.internal.test:{receiver.port}"


def test_ipv6_loopback_is_refused_unless_allowed(receivers: Receivers) -> None:
    receiver = receivers(host="::1")
    refused = post(guarded_client(DestinationPolicy(), 5), receiver.url, b"{}", {}, time.monotonic() + 5)
    assert refused.error is not None and "refused" in refused.error and receiver.requests == []
    allowed = post(guarded_client(DestinationPolicy.from_entries(["::1"]), 5), receiver.url, b"{}", {},
                   time.monotonic() + 5)
    assert allowed.status == 200 and len(receiver.requests) == 1


def test_a_redirect_to_an_internal_address_is_not_followed(receivers: Receivers) -> None:
    target = receivers()
    redirecting = receivers(default=307, headers={"Location": target.url})
    policy = DestinationPolicy.from_entries(["127.0.0.1/32"])
    attempt = post(guarded_client(policy, 5), redirecting.url, b"{}", {}, time.monotonic() + 5)
    assert attempt.status == 307 and not attempt.retryable and "redirects are not followed" in (attempt.error or "")
    assert target.requests == []


def test_a_worker_refuses_a_host_name_resolving_to_loopback(make_workers: MakeWorkers, receivers: Receivers) -> None:
    receiver = receivers()
    url = f"http://localhost:{receiver.port}/hook"
    strict = make_workers({"offload.webhooks.allowed_hosts": ""})
    hook = webhooks.add(strict.app, url)
    [job] = events.notify(strict.app, "Package", "changed", {"id": "p1"})
    assert strict.start("webhooks", "--burst").wait(30) == 0
    failed = strict.job(job.id)
    assert failed.state == FAILED and failed.attempts == 1 and "refused to deliver to localhost" in \
        failed.error["message"]
    assert receiver.requests == []
    assert "refused" in webhooks.deliveries(strict.app, hook["id"])[0]["error"]

    lenient = make_workers({"offload.webhooks.allowed_hosts": "localhost"})
    lenient.app.store.put_record(webhooks.KIND, hook["id"], webhooks.get(strict.app, hook["id"]))
    [job] = events.notify(lenient.app, "Package", "changed", {"id": "p1"})
    assert lenient.start("webhooks", "--burst").wait(30) == 0
    assert lenient.job(job.id).state == FINISHED and len(receiver.requests) == 1


def test_policy_entries() -> None:
    policy = DestinationPolicy.from_entries(["Hooks.Example.", "192.168.0.0/16", "[fd00::1]", " "])
    assert policy.allows_host("hooks.example") and not policy.allows_host("example")
    assert policy.allows_address(ipaddress.ip_address("192.168.4.2"))
    assert policy.allows_address(ipaddress.ip_address("::ffff:192.168.4.2"))
    assert policy.allows_address(ipaddress.ip_address("fd00::1"))
    assert not policy.allows_address(ipaddress.ip_address("10.1.1.1"))
    assert policy.allows_address(ipaddress.ip_address("93.184.215.14"))
    assert DestinationPolicy.from_entries(["*"]).allows_address(ipaddress.ip_address("127.0.0.1"))
