"""Consumers end to end: registered by config or entry point, run by ``offload consumers run`` and by a
plain ``offload worker`` in subprocesses, receiving ``(routing_key, operation, payload)`` as published."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from offload import events
from offload.config import Config
from offload.errors import ConfigError
from offload.events import consumers
from offload.jobs import FAILED, FINISHED
from tests.events.conftest import EventWorkers, ledger_env, read_ledger
from tests.worker.conftest import ROOT, wait_until

MakeWorkers = Callable[..., EventWorkers]
MOD = "tests.events.consumer_classes"
THREE = f"{MOD}:Recorder, {MOD}:Archiver, {MOD}:Broken"


def test_consumers_run_from_the_cli_receive_events_as_published(make_workers: MakeWorkers, tmp_path: Path) -> None:
    w = make_workers({"offload.consumers": THREE}, ledger_env(tmp_path))
    when = dt.datetime(2026, 1, 31, 12, 30, tzinfo=dt.timezone.utc)
    published = [
        ("Package", "new", {"id": "p1", "title": "Römische Straßen", "tags": ["a", "b"]}),
        ("Package", "changed", {"id": "p1", "modified": when, "size": 12.5}),
        ("Resource", "deleted", {"id": "r9"}),
        ("Package", "deleted", {"id": "p1"}),
    ]
    jobs = [job for rk, op, payload in published for job in events.notify(w.app, rk, op, payload)]
    titles = [job.title for job in jobs]
    assert titles[:3] == ["Package new -> archiver", "Package new -> broken", "Package new -> recorder"]
    assert {job.queue for job in jobs} == {"consumer.recorder", "consumer.archiver", "consumer.broken"}

    w.start_cli("consumers", "run", "recorder", "archiver", "broken")
    states = {job.id: w.wait_state(job.id, FINISHED, FAILED).state for job in jobs}
    recorded = read_ledger(tmp_path / "recorder.jsonl")
    as_json = [(rk, op, {**p, "modified": when.isoformat()} if "modified" in p else p) for rk, op, p in published]
    assert [(e["routing_key"], e["operation"], e["payload"]) for e in recorded] == as_json
    assert recorded[1]["types"] == {"id": "str", "modified": "datetime", "size": "float"}
    assert [(e["routing_key"], e["operation"]) for e in read_ledger(tmp_path / "archiver.jsonl")] == \
        [("Package", "new"), ("Package", "changed")]
    assert len(read_ledger(tmp_path / "broken.jsonl")) == 2 * len(published), "retried per its policy"
    broken = [job.id for job in jobs if job.queue == "consumer.broken"]
    assert all(states[job_id] == FAILED for job_id in broken)
    assert all(state == FINISHED for job_id, state in states.items() if job_id not in broken)
    assert w.job(broken[0]).error["message"] == "broken consumer"


def test_payload_types_survive_the_trip(make_workers: MakeWorkers, tmp_path: Path) -> None:
    w = make_workers({"offload.consumers": f"{MOD}:Recorder"}, ledger_env(tmp_path))
    [job] = events.notify(w.app, "Package", "changed", {"when": dt.datetime(2026, 1, 31, 12, 30)})
    assert w.start("--burst").wait(30) == 0, "a worker without queues serves the consumers' queues"
    assert w.job(job.id).result == {"recorded": True}
    [entry] = read_ledger(tmp_path / "recorder.jsonl")
    assert entry["payload"] == {"when": "2026-01-31T12:30:00"} and entry["types"] == {"when": "datetime"}


def test_consumers_run_errors_and_listing(make_workers: MakeWorkers, tmp_path: Path) -> None:
    none = make_workers({"offload.consumers": ""})
    for args in (["--all"], ["recorder"], []):
        out = none.run_cli("consumers", "run", *args)
        assert out.returncode == 1 and "No consumers" in out.stderr
    assert none.run_cli("consumers", "list").stdout == "No consumers are registered.\n"
    some = make_workers({"offload.consumers": THREE})
    out = some.run_cli("consumers", "run", "recorder", "nope")
    assert out.returncode == 1
    assert out.stderr == "Unknown consumer 'nope'; registered consumers: archiver, broken, recorder\n"
    assert some.run_cli("consumers", "run").returncode == 2
    listed = some.run_cli("consumers", "list").stdout.splitlines()
    assert listed[0].startswith(f"archiver  ->  {MOD}:Archiver  queue=consumer.archiver  routing_keys=Package  "
                                "operations=new,changed  [setting offload.consumers]")
    assert [line.split()[0] for line in listed] == ["archiver", "broken", "recorder"]


def test_consumers_come_from_an_entry_point_group(make_workers: MakeWorkers, tmp_path: Path) -> None:
    dist = tmp_path / "site" / "offload_consumer_ext-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: offload-consumer-ext\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[offload.consumers]\nrecorder = {MOD}:Recorder\n"
                                           f"unnamed = {MOD}:Unnamed\n")
    w = make_workers({"offload.consumers": ""}, ledger_env(tmp_path))
    env = w.env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), env["PYTHONPATH"]])
    out = subprocess.run([sys.executable, "-m", "offload", "--store", w.url, "--site-id", w.site, "consumers",
                          "list"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "recorder  ->  tests.events.consumer_classes:Recorder" in out.stdout
    assert "[entry point recorder (offload-consumer-ext)]" in out.stdout
    assert "unnamed  ->" in out.stdout
    # The producer here does not see the entry point; the delivery job names the class, so the worker runs it.
    [job] = events.notify(w.app.__class__(store=w.url, site_id=w.site, consumers=f"{MOD}:Recorder"),
                          "Package", "new", {"id": "ep"})
    proc = subprocess.Popen([sys.executable, "-m", "offload", "--store", w.url, "--site-id", w.site, "consumers",
                             "run", "recorder", "--burst"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
    assert proc.wait(30) == 0
    assert w.job(job.id).state == FINISHED
    assert read_ledger(tmp_path / "recorder.jsonl")[0]["payload"] == {"id": "ep"}


def test_a_consumer_does_not_receive_the_events_it_causes(make_workers: MakeWorkers, tmp_path: Path) -> None:
    w = make_workers({"offload.consumers": f"{MOD}:Echoer, {MOD}:Recorder"}, ledger_env(tmp_path))
    [echo_job, record_job] = events.notify(w.app, "Package", "changed", {"id": "p1"}, origin="user:alice")
    w.start()
    w.wait_state(echo_job.id, FINISHED)
    wait_until(lambda: len(read_ledger(tmp_path / "recorder.jsonl")) == 2)
    assert len(read_ledger(tmp_path / "echoer.jsonl")) == 1
    first, second = sorted(read_ledger(tmp_path / "recorder.jsonl"), key=lambda e: len(e["origin"]))
    assert first["origin"] == ["user:alice"] and first["payload"] == {"id": "p1"}
    assert second["origin"] == ["user:alice", "consumer:echoer"] and second["payload"]["echoed"] is True
    assert w.job(record_job.id).state == FINISHED
    pending = w.app.list_jobs(["consumer.echoer"], ["queued", "scheduled", "started"])
    assert pending == [], "the echoed event was not delivered back to the echoer"


def test_registry_rejects_bad_entries() -> None:
    def registry(entries: str) -> dict[str, consumers.RegisteredConsumer]:
        return consumers.registered(Config.load(None, {"offload.consumers": entries}, environ={}))

    assert list(registry(f"{MOD}:Unnamed")) == ["unnamed"]
    with pytest.raises(ConfigError, match=r"not an offload\.Consumer subclass"):
        registry(f"{MOD}:NotAConsumer")
    with pytest.raises(ConfigError, match="cannot import"):
        registry(f"{MOD}:Missing")
    with pytest.raises(ConfigError, match="not an import path"):
        registry("just_a_module")
    with pytest.raises(consumers.ConsumerNotFound, match="Unknown consumer 'x'"):
        consumers.lookup(Config.load(None, {}, environ={}), "x")


def test_a_notification_loop_is_cut_by_the_depth_limit(tmp_path: Path) -> None:
    from offload import Offload

    app = Offload(store=f"sqlite:///{tmp_path}/loop.db", consumers=f"{MOD}:Recorder")
    chain = [f"consumer:c{i}" for i in range(events.MAX_ORIGIN_DEPTH)]
    assert len(events.notify(app, "Package", "changed", {}, origin=chain)) == 1
    assert events.notify(app, "Package", "changed", {}, origin=[*chain, "consumer:one-more"]) == []
    with pytest.raises(ValueError, match="invalid origin marker"):
        events.notify(app, "Package", "changed", {}, origin="has space")
    with pytest.raises(ValueError, match="invalid routing_key"):
        events.notify(app, "", "changed", {})
