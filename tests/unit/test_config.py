from __future__ import annotations

from pathlib import Path

import pytest

from offload.config import Config, parse_duration
from offload.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "offload.ini"
    path.write_text(text)
    return path


def test_defaults() -> None:
    conf = Config.load(environ={})
    assert conf["offload.store"] == "sqlite:///offload.db"
    assert conf["offload.site_id"] == "default"
    assert conf["offload.jobs.timeout"] == 180
    assert conf["offload.jobs.keep"] == 7 * 86400
    assert conf["offload.worker.lease"] == 30
    assert conf.source("offload.store") == "default"


def test_resolution_order_flags_then_env_then_file_then_default(tmp_path: Path) -> None:
    ini = write(tmp_path, "[offload]\noffload.store = sqlite:///file.db\nsite_id = from-file\njobs.timeout = 60\n")
    env = {"OFFLOAD_STORE": "redis://env", "OFFLOAD_JOBS_TIMEOUT": "90"}
    conf = Config.load(ini, overrides={"offload.store": "memory://flag"}, environ=env)
    assert conf["offload.store"] == "memory://flag" and conf.source("offload.store") == "argument"
    assert conf["offload.jobs.timeout"] == 90 and "OFFLOAD_JOBS_TIMEOUT" in conf.source("offload.jobs.timeout")
    assert conf["offload.site_id"] == "from-file" and "file" in conf.source("offload.site_id")
    assert conf["offload.worker.concurrency"] == 1


def test_config_file_from_environment(tmp_path: Path) -> None:
    ini = write(tmp_path, "[offload]\nsite_id = portal\n")
    assert Config.load(environ={"OFFLOAD_CONFIG": str(ini)})["offload.site_id"] == "portal"


def test_types_are_parsed() -> None:
    env = {
        "OFFLOAD_JOBS_KEEP": "12h",
        "OFFLOAD_JOBS_SYNC": "true",
        "OFFLOAD_API_TOKENS": "s3cr3t:admin, r3ad:read",
        "OFFLOAD_TASKS_IMPORTS": "a.tasks,b.tasks",
        "OFFLOAD_WORKER_CONCURRENCY": "4",
    }
    conf = Config.load(environ=env)
    assert conf["offload.jobs.keep"] == 43200
    assert conf["offload.jobs.sync"] is True
    assert conf["offload.api.tokens"] == ["s3cr3t:admin", "r3ad:read"]
    assert conf["offload.tasks.imports"] == ["a.tasks", "b.tasks"]
    assert conf["offload.worker.concurrency"] == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[offload]\nstroe = x\n", "unknown setting 'stroe'"),
        ("[offload]\njobs.timeout = soon\n", "offload.jobs.timeout"),
        ("[offload]\nworker.concurrency = 0\n", "concurrency must be between"),
        ("[offload]\njobs.sync = maybe\n", "not a boolean"),
        ("[other]\nx = 1\n", "no [offload] section"),
        ("this is not ini", "not a valid ini file"),
        ("[offload]\napi.tokens = nocolon\n", "token:admin"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.load(write(tmp_path, text), environ={})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_and_bad_environment() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Config.load("/nonexistent/offload.ini", environ={})
    with pytest.raises(ConfigError, match="OFFLOAD_WORKER_LEASE"):
        Config.load(environ={"OFFLOAD_WORKER_LEASE": "forever"})
    with pytest.raises(ConfigError, match="unknown setting"):
        Config.load(environ={}, overrides={"offload.nope": 1})


def test_durations() -> None:
    assert parse_duration("90") == 90 and parse_duration("1.5m") == 90 and parse_duration("7d") == 604800
    with pytest.raises(ValueError):
        parse_duration("7 days")


def test_dead_worker_settings() -> None:
    conf = Config.load(environ={})
    assert conf["offload.worker.dead_after"] == 10 and conf["offload.worker.host_id"] == ""
    conf = Config.load(environ={"OFFLOAD_WORKER_DEAD_AFTER": "1m", "OFFLOAD_WORKER_HOST_ID": "rack-2"})
    assert conf["offload.worker.dead_after"] == 60 and conf["offload.worker.host_id"] == "rack-2"
    with pytest.raises(ConfigError, match=r"offload\.worker\.dead_after must be at least 3 seconds"):
        Config.load(environ={"OFFLOAD_WORKER_DEAD_AFTER": "1"})
