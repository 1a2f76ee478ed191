"""``offload.Client`` against the real management API, and the callback pattern: a consumer calls back into
the host application's API, which publishes the change with the origin it was given, so the change is not
delivered back to the consumer that caused it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import offload
from offload import Offload, events
from offload.events import client
from offload.jobs import FINISHED
from tests import jobfuncs
from tests.events.conftest import EventWorkers, ledger_env, read_ledger
from tests.servers import free_port
from tests.worker.conftest import wait_until

MakeWorkers = Callable[..., EventWorkers]
MOD = "tests.events.consumer_classes"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[str, Offload]]:
    """offload's own API (the Flask app) served on 127.0.0.1 from a thread."""
    pytest.importorskip("flask")
    from werkzeug.serving import make_server

    from offload.web import create_app

    site = Offload(store=f"sqlite:///{tmp_path}/api.db", api__tokens="admin-token:admin, read-token:read")
    server = make_server("127.0.0.1", 0, create_app(site), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", site
    server.shutdown()
    site.close()


def test_client_calls_actions_and_raises_offload_errors(api: tuple[str, Offload]) -> None:
    url, site = api
    job = site.enqueue(jobfuncs.add, [1, 2], title="Add")
    with offload.Client(url, "read-token") as reader:
        shown = reader.job_show(job.id)
        assert shown["id"] == job.id and shown["title"] == "Add" and shown["state"] == "queued"
        assert reader.call("job_list", ids_only=True) == [job.id]
        with pytest.raises(client.NotFound, match="There is no job with ID"):
            reader.job_show("0" * 32)
        with pytest.raises(client.ValidationError) as invalid:
            reader.call("job_show")
        assert invalid.value.error["id"] == ["Missing value"] and invalid.value.status == 409
        with pytest.raises(client.NotAuthorized) as denied:
            reader.job_cancel(job.id)
        assert denied.value.status == 403 and isinstance(denied.value, offload.OffloadError)
    with offload.Client(url, "admin-token") as admin:
        assert admin.job_cancel(job.id)["state"] == "canceled"
    with pytest.raises(client.NotAuthorized), offload.Client(url, "wrong") as stranger:
        stranger.job_list()
    with pytest.raises(client.APIUnavailable, match="cannot reach"), \
            offload.Client(f"http://127.0.0.1:{free_port()}", "x", timeout=2) as nobody:
        nobody.job_list()


class HostApplication:
    """A stand-in for the application's own action API: ``package_patch`` changes a package and publishes
    ``Package changed`` with the caller's ``Offload-Origin``, as the documented pattern says."""

    def __init__(self, site: Offload) -> None:
        self.site = site
        self.calls: list[dict[str, Any]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                params = json.loads(self.rfile.read(int(self.headers["content-length"])))
                origin = self.headers.get(events.ORIGIN_HEADER)
                host.calls.append({"path": self.path, "params": params, "origin": origin,
                                   "token": self.headers.get("authorization")})
                package = {"id": params["id"], "archived": params["archived"]}
                events.notify(host.site, "Package", "changed", package, origin=origin)
                reply = json.dumps({"success": True, "result": package}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def test_a_consumer_calling_back_does_not_receive_the_change_it_caused(make_workers: MakeWorkers,
                                                                      tmp_path: Path) -> None:
    w = make_workers({"offload.consumers": f"{MOD}:Patcher, {MOD}:Recorder"}, ledger_env(tmp_path))
    host = HostApplication(w.app)
    w.extra_env["OFFLOAD_TEST_API_URL"] = host.url
    try:
        [patch_job, _] = events.notify(w.app, "Package", "new", {"id": "p1"})
        w.start()
        assert w.wait_state(patch_job.id, FINISHED).result == {"id": "p1", "archived": True}
        wait_until(lambda: len(read_ledger(tmp_path / "recorder.jsonl")) == 2)
    finally:
        host.server.shutdown()
    [call] = host.calls
    assert call["path"] == "/api/3/action/package_patch" and call["token"] == "site-token"
    assert call["origin"] == "consumer:patcher"
    assert [e["operation"] for e in read_ledger(tmp_path / "patcher.jsonl")] == ["new"]
    changed = [e for e in read_ledger(tmp_path / "recorder.jsonl") if e["operation"] == "changed"]
    assert changed[0]["origin"] == ["consumer:patcher"] and changed[0]["payload"]["archived"] is True
    assert w.app.list_jobs(["consumer.patcher"], ["queued", "scheduled", "started", "failed"]) == []


def test_client_origin_defaults_to_the_running_delivery() -> None:
    event = events.Event("e1", 0.0, "Package", "changed", {}, ("user:alice",))
    with events.delivering(event, "consumer:archiver"):
        assert offload.Client("http://127.0.0.1:9").origin == ["user:alice", "consumer:archiver"]
    assert offload.Client("http://127.0.0.1:9").origin == []
    assert offload.Client("http://127.0.0.1:9", origin="job:1, consumer:x").origin == ["job:1", "consumer:x"]
