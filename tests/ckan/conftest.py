"""A real CKAN 2.12 site per store, for the CKAN integration tests.

The tests run here (offload's venv) and drive CKAN in subprocesses from the CKAN venv (``scripts/ckan-env``
makes it: ``.ckan-venv`` with ckan==2.12.0 and offload installed editable): CKAN's CLI, a CKAN web server for
the action API, and ``tests/ckan/ckan_side.py`` for enqueueing from CKAN code; job functions are in
``ckan_testjobs.py``. Each site gets its own PostgreSQL database (dropped afterwards) and a stand-in for Solr
(``solr_standin.py``).

The sites, servers and Solr stand-in live as long as this package's tests (``package`` scope), so that nothing of
theirs keeps running, and competing for the CPU, while the rest of the suite runs.

Sites: ``postgresql`` (jobs in the site's PostgreSQL, ``ckan.redis.url`` pointing at a closed port so that any
use of Redis would fail), ``redis`` (no ``ckan.offload.store``: jobs in ``ckan.redis.url``) and ``datastore`` (as
``postgresql``, with CKAN's datastore extension on a datastore database of its own, as a site operator sets it up:
``ckan datastore set-permissions``). Without the CKAN
venv, PostgreSQL or Redis the tests skip with the reason; with OFFLOAD_REQUIRE_SERVICES=1 (CI) they fail.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import POSTGRES_URL, service_missing

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CKAN_VENV = Path(os.environ.get("OFFLOAD_CKAN_VENV", REPO / ".ckan-venv"))
CKAN = CKAN_VENV / "bin" / "ckan"
CKAN_PYTHON = CKAN_VENV / "bin" / "python"
REDIS_DB_URL = os.environ.get("OFFLOAD_TEST_CKAN_REDIS_URL", "redis://127.0.0.1:6379/12")
RUN_ID = uuid.uuid4().hex[:8]
NO_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there


def site_id_for(kind: str) -> str:
    return f"offload-test-{RUN_ID}-{kind}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def _missing_ckan_venv() -> str | None:
    if not CKAN.exists():
        return f"no CKAN venv at {CKAN_VENV} (run scripts/ckan-env)"
    return None


def _admin_db(sql: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute(sql)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.strip()]


@dataclass
class Site:
    """A CKAN site: its config file, users' tokens and web server, and helpers to drive it."""

    kind: str
    dir: Path
    ini: Path
    env: dict[str, str]
    db: str = ""
    url: str = ""
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def site_id(self) -> str:
        return site_id_for(self.kind)

    def ckan(self, *args: str, timeout: float = 120) -> Result:
        """``ckan -c test.ini ARGS`` in the CKAN venv."""
        proc = subprocess.run([str(CKAN), "-c", str(self.ini), *args], capture_output=True, text=True,
                              env=self.env, cwd=self.dir, timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def side(self, command: str, *args: str) -> Any:
        """``tests/ckan/ckan_side.py COMMAND`` in the CKAN venv; its JSON result."""
        proc = subprocess.run([str(CKAN_PYTHON), str(HERE / "ckan_side.py"), command, str(self.ini), *args],
                              capture_output=True, text=True, env=self.env, cwd=self.dir, timeout=120)
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT "):])
        raise AssertionError(f"ckan_side {command} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")

    def enqueue(self, *specs: dict[str, Any]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.side("enqueue", json.dumps(list(specs)))
        return result

    def action(self, name: str, data: dict[str, Any] | None = None, user: str | None = "offload-admin",
               method: str = "POST") -> tuple[int, dict[str, Any]]:
        """Call ``/api/3/action/NAME`` as ``user`` (None: anonymous); (HTTP status, JSON body)."""
        headers = {"Content-Type": "application/json"}
        if user is not None:
            headers["Authorization"] = self.tokens[user]
        url = f"{self.url}/api/3/action/{name}"
        body = None
        if method == "POST":
            body = json.dumps(data or {}).encode()
        elif data:
            url += "?" + "&".join(f"{k}={v}" for k, v in data.items())
        request = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")


def _write_config(site_dir: Path, kind: str, db: str, solr_port: int, web_port: int, env: dict[str, str]) -> Path:
    ini = site_dir / "test.ini"
    generated = site_dir.parent / "generated.ini"  # `ckan generate config` once per run, copied by each site
    if not generated.exists():
        subprocess.run([str(CKAN), "generate", "config", str(generated)], check=True, capture_output=True, env=env,
                       timeout=120)
    # Log lines carry the process id, so the tests can tell the worker's lines from its job process's.
    text = generated.read_text().replace("format = %(asctime)s %(levelname)-5.5s", "format = %(asctime)s "
                                         "pid=%(process)d %(levelname)-5.5s")
    ini.write_text(text)
    db_url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{db}"
    options = {
        "sqlalchemy.url": db_url,
        "ckan.site_url": f"http://127.0.0.1:{web_port}",
        "solr_url": f"http://127.0.0.1:{solr_port}/solr/ckan",
        "ckan.site_id": site_id_for(kind),
        "ckan.storage_path": str(site_dir / "storage"),
        "ckan.plugins": "offload",
        "ckan.jobs.timeout": "60",
        "ckan.auth.create_unowned_dataset": "true",
    }
    if kind in ("postgresql", "datastore"):
        options["ckan.offload.store"] = f"{db_url}?schema=offload_jobs"
        options["ckan.redis.url"] = NO_REDIS_URL
    if kind == "datastore":
        base = POSTGRES_URL.rsplit("/", 1)[0]
        options["ckan.plugins"] = "offload datastore"
        options["ckan.datastore.write_url"] = f"{base}/{db}_ds"
        options["ckan.datastore.read_url"] = re.sub(r"://[^@/]*@", f"://{db}_read@", base) + f"/{db}_ds"
    else:
        options["ckan.redis.url"] = REDIS_DB_URL
    subprocess.run([str(CKAN), "config-tool", str(ini), *(f"{k}={v}" for k, v in options.items())], check=True,
                   capture_output=True, env=env, timeout=120)
    return ini


def _service_reasons(kind: str) -> str | None:
    from tests.conftest import _postgres_reason, _redis_reason

    reason = _missing_ckan_venv() or _postgres_reason()
    if reason is None and kind == "redis":
        reason = _redis_reason()
    return reason


@pytest.fixture(scope="package")
def solr_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = _free_port()
    log = tmp_path_factory.mktemp("solr") / "solr.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("solr_standin.py")), str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_http(f"http://127.0.0.1:{port}/solr/ckan/admin/ping", proc, 30, log)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


class Sites:
    """Prepares the sites a run needs in the background, all at once (CKAN's commands spend seconds starting,
    mostly waiting), and removes them at the end of the session."""

    def __init__(self, base: Path, solr_port: int) -> None:
        self.base = base
        self.solr_port = solr_port
        self.pool = ThreadPoolExecutor(2)
        self.futures: dict[str, Future[Site]] = {}
        self.servers: list[subprocess.Popen[bytes]] = []
        self.databases: list[str] = []
        self.roles: list[str] = []

    def get(self, kind: str, wanted: set[str]) -> Site:
        for other in [kind, *sorted(wanted - {kind})]:
            if other not in self.futures and _service_reasons(other) is None:
                self.futures[other] = self.pool.submit(self._prepare, other)
        return self.futures[kind].result()

    def _prepare(self, kind: str) -> Site:
        """A CKAN site with the offload plugin, its database initialised, two users, and its web server up."""
        site_dir = self.base / f"ckan-{kind}"
        site_dir.mkdir()
        db = f"ckan_test_{RUN_ID}_{kind}"
        env = {**os.environ, "PYTHONPATH": str(HERE), "PYTHONUNBUFFERED": "1"}
        for name in ("CKAN_INI", "CKAN_CONFIG", "OFFLOAD_CONFIG", "OFFLOAD_STORE", "OFFLOAD_SITE_ID"):
            env.pop(name, None)
        web_port = _free_port()
        _admin_db(f'CREATE DATABASE "{db}"')
        self.databases.append(db)
        if kind == "datastore":
            _admin_db(f'DROP ROLE IF EXISTS "{db}_read"')
            _admin_db(f'CREATE ROLE "{db}_read" LOGIN')
            self.roles.append(f"{db}_read")
            _admin_db(f'CREATE DATABASE "{db}_ds"')
            self.databases.append(f"{db}_ds")
        ini = _write_config(site_dir, kind, db, self.solr_port, web_port, env)
        site = Site(kind, site_dir, ini, env, db)
        init = site.ckan("db", "init")
        assert init.returncode == 0, init.stderr
        if kind == "datastore":
            from tests.ckan.ckan_suite import _apply_sql

            permissions = site.ckan("datastore", "set-permissions")
            assert permissions.returncode == 0, permissions.stderr
            _apply_sql(permissions.stdout)
        log = site_dir / "server.log"
        with open(log, "wb") as out:
            server = subprocess.Popen([str(CKAN), "-c", str(ini), "run", "-H", "127.0.0.1", "-p", str(web_port),
                                       "-r", "-t"], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=site_dir)
        self.servers.append(server)
        site.tokens = site.side("setup")  # while the server starts
        site.url = f"http://127.0.0.1:{web_port}"
        _wait_http(f"{site.url}/api/3/action/status_show", server, 180, log)
        return site

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for server in self.servers:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
        for db in self.databases:
            _admin_db(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        for role in self.roles:
            _admin_db(f'DROP ROLE IF EXISTS "{role}"')
        if "redis" in self.futures:
            _drop_redis_keys(f"offload:{{{site_id_for('redis')}}}:*")


@pytest.fixture(scope="package")
def sites(solr_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    prepared = Sites(tmp_path_factory.mktemp("ckan"), solr_port)
    try:
        yield prepared
    finally:
        prepared.close()


@pytest.fixture(scope="package", params=["postgresql", "redis"])
def site(request: pytest.FixtureRequest) -> Site:
    """The CKAN site of the test's store kind (``postgresql`` or ``redis``)."""
    kind: str = request.param
    reason = _service_reasons(kind)
    if reason:
        service_missing("CKAN test site", reason)
    wanted = {item.callspec.params["site"] for item in request.session.items
              if hasattr(item, "callspec") and "site" in item.callspec.params}
    sites: Sites = request.getfixturevalue("sites")
    return sites.get(kind, wanted)


@pytest.fixture(scope="package")
def datastore_site(request: pytest.FixtureRequest) -> Site:
    """The CKAN site with the datastore extension (jobs in PostgreSQL)."""
    reason = _service_reasons("datastore")
    if reason:
        service_missing("CKAN datastore test site", reason)
    sites: Sites = request.getfixturevalue("sites")
    return sites.get("datastore", {"datastore"})


def _drop_redis_keys(pattern: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_DB_URL)
    keys = list(client.scan_iter(pattern, count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i : i + 500])
