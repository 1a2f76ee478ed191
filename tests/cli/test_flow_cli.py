"""Priorities and paused queues through the real ``offload`` command and the Python API (issue 22)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from offload import Offload
from offload.errors import InvalidQueueName
from tests import jobfuncs
from tests.cli.test_cli import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_enqueue_list_and_show_with_priorities(cli: Cli) -> None:
    out = cli("enqueue", "tests.jobfuncs:noop", "--priority", "4", "--json")
    low = json.loads(out.stdout)
    assert out.returncode == 0 and low["priority"] == 4
    plain = cli.app.enqueue(jobfuncs.noop)
    lines = cli("list").stdout.splitlines()
    assert re.fullmatch(rf"\S+ {low['id']} default \(priority 4\)", lines[0])
    assert re.fullmatch(rf"\S+ {plain.id} default", lines[1])  # CKAN's format when the priority is 0
    assert "Priority: 4" in cli("show", low["id"]).stdout
    assert "Priority: 0" in cli("show", plain.id).stdout


def test_enqueue_refuses_a_bad_priority(cli: Cli) -> None:
    out = cli("enqueue", "tests.jobfuncs:noop", "--priority", "10")
    assert out.returncode == 2 and "10 is not in the range 0<=x<=9" in out.stderr
    assert cli.app.store.count() == 0


def test_pause_resume_and_queues(cli: Cli) -> None:
    cli.app.enqueue(jobfuncs.noop, queue="mail")
    out = cli("pause", "mail")
    assert out.returncode == 0 and out.stdout == 'Paused queue "mail"\n'
    assert cli("pause", "mail").stdout == 'Queue "mail" was paused already\n'
    assert cli("pause", "idle").returncode == 0
    text = cli("queues").stdout.splitlines()
    assert [line.split()[0] for line in text[1:]] == ["idle", "mail"]
    assert all(line.endswith("  paused") for line in text[1:])
    assert json.loads(cli("queues", "--json").stdout) == {"idle": {"paused": True},
                                                          "mail": {"queued": 1, "paused": True}}
    # A paused queue runs nothing, even in a burst worker; its jobs wait.
    assert cli("worker", "--burst", "mail").returncode == 0
    assert cli.app.store.count(["mail"], ["queued"]) == 1
    assert cli("resume", "mail").stdout == 'Resumed queue "mail"\n'
    assert cli("resume", "mail").stdout == 'Queue "mail" was not paused\n'
    assert json.loads(cli("queues", "--json").stdout) == {"idle": {"paused": True}, "mail": {"queued": 1}}
    assert cli("worker", "--burst", "mail").returncode == 0
    assert cli.app.store.count(["mail"], ["finished"]) == 1


def test_pause_refuses_a_bad_queue_name(cli: Cli) -> None:
    out = cli("pause", "no/slash")
    assert out.returncode == 1 and "invalid queue name 'no/slash'" in out.stderr
    assert cli.app.paused() == {}


@pytest.mark.parametrize("priority", [-1, 10, 2.0, "1", True, None])
def test_enqueue_refuses_a_bad_priority_naming_it_and_writes_nothing(tmp_path, priority: object) -> None:  # type: ignore[no-untyped-def]
    app = Offload(store=f"sqlite:///{tmp_path}/p.db", site_id="p")
    if priority is None:  # None means the default
        assert app.enqueue(jobfuncs.noop, priority=None).priority == 0
        return
    with pytest.raises(ValueError, match=re.escape(f"invalid priority {priority!r}: use a whole number from 0")):
        app.enqueue(jobfuncs.noop, priority=priority)
    with pytest.raises(ValueError, match="invalid priority"):
        app.enqueue_many([(jobfuncs.noop, [1]), (jobfuncs.noop, [2])], priority=priority)
    assert app.store.count() == 0
    app.close()


def test_module_level_pause_and_resume(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import offload

    offload.configure(store=f"sqlite:///{tmp_path}/m.db", site_id="m")
    try:
        assert offload.pause("reports") is True
        assert set(offload.paused()) == {"reports"}
        assert offload.resume("reports") is True and offload.paused() == {}
        with pytest.raises(offload.InvalidQueueName):
            offload.pause("bad name")
    finally:
        offload.default_app().close()


def test_limit_sets_shows_and_removes_a_concurrency_limit(cli: Cli) -> None:
    cli.app.enqueue(jobfuncs.noop, queue="mail")
    out = cli("limit", "mail", "--concurrency", "2")
    assert out.returncode == 0 and out.stdout == 'Queue "mail": at most 2 at once\n'
    assert cli("limit", "mail").stdout == 'Queue "mail": at most 2 at once\n'
    assert cli.app.limits() == {"mail": 2}
    counts = json.loads(cli("queues", "--json").stdout)
    assert counts["mail"]["concurrency_limit"] == 2 and counts["mail"]["queued"] == 1
    header, row = cli("queues").stdout.splitlines()[:2]
    assert "limit" in header.split() and row.split()[0] == "mail" and "2" in row.split()[-1:]
    assert cli("limit", "mail", "--no-concurrency").stdout == 'Queue "mail": no concurrency limit\n'
    assert cli.app.limits() == {}


@pytest.mark.parametrize(("args", "message"), [
    (["mail", "--concurrency", "0"], "invalid concurrency limit 0"),
    (["mail", "--concurrency", "two"], "'two' is not a valid integer"),
    (["no spaces", "--concurrency", "2"], "no spaces"),
    (["mail", "--concurrency", "2", "--no-concurrency"], "not both"),
])
def test_limit_refuses_bad_input_and_writes_nothing(cli: Cli, args: list[str], message: str) -> None:
    out = cli("limit", *args)
    assert out.returncode != 0 and message in out.stderr
    assert cli.app.limits() == {}


@pytest.mark.parametrize("concurrency", [0, -3, 2.5, "2", True])
def test_the_python_api_refuses_a_bad_limit_by_name(tmp_path: Path, concurrency: object) -> None:
    app = Offload(store=f"sqlite:///{tmp_path}/jobs.db")
    with pytest.raises(ValueError, match=re.escape(f"invalid concurrency limit {concurrency!r}")):
        app.limit("mail", concurrency)  # type: ignore[arg-type]
    with pytest.raises(InvalidQueueName, match="no spaces"):
        app.limit("no spaces", 2)
    assert app.limits() == {}


def test_limit_with_a_per_key_limit(cli: Cli) -> None:
    out = cli("limit", "harvest", "--key-concurrency", "1")
    assert out.returncode == 0 and out.stdout == 'Queue "harvest": no concurrency limit, at most 1 per limit key\n'
    out = cli("limit", "harvest", "--concurrency", "3")
    assert out.stdout == 'Queue "harvest": at most 3 at once, at most 1 per limit key\n', "the key limit is kept"
    assert cli.app.limits() == {"harvest": 3} and cli.app.key_limits() == {"harvest": 1}
    counts = json.loads(cli("queues", "--json").stdout)
    assert counts["harvest"] == {"concurrency_limit": 3, "key_concurrency_limit": 1}
    assert "3/key 1" in cli("queues").stdout
    assert cli("limit", "harvest", "--key-concurrency", "0").returncode != 0
    assert cli("limit", "harvest", "--no-key-concurrency").stdout == 'Queue "harvest": at most 3 at once\n'
    assert cli.app.key_limits() == {}


@pytest.mark.parametrize("key", [42, "", "x" * 201, ["a"]])
def test_enqueue_refuses_a_bad_limit_key_by_name_and_writes_nothing(tmp_path: Path, key: object) -> None:
    app = Offload(store=f"sqlite:///{tmp_path}/jobs.db")
    with pytest.raises(ValueError, match=re.escape(f"invalid limit_key {key!r}")):
        app.enqueue(jobfuncs.noop, limit_key=key)
    assert app.store.count() == 0
    job = app.enqueue(jobfuncs.noop, limit_key="source-42")
    assert app.get_job(job.id).limit_key == "source-42"
