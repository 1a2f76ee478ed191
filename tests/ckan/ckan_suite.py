"""Running CKAN 2.12's own test modules (the installed ``ckan`` package's tests) in the CKAN venv: once on stock CKAN
(RQ on Redis) and once with jobs on offload (``-p offload.contrib.ckan.pytest_plugin``), each on fresh databases.

What CKAN's CI gives its tests (``test-core.ini`` and ``.github/workflows``), made here per run: a CKAN database, a
datastore database whose read user can only read (``ckan datastore set-permissions``), the ``tablefunc``
extension, Solr (the stand-in), Redis for RQ (a database of its own, since CKAN's ``clean_queues`` empties every RQ
queue there) and a test ini with the settings CKAN's tests expect (``ckan.plugins`` empty, ``ckan.site_id =
test.ckan.net``, ``ckan.jobs.timeout = 180``, ...).
"""

from __future__ import annotations

import os
import re
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from tests.ckan.conftest import CKAN, CKAN_PYTHON, CKAN_VENV, RUN_ID, _admin_db
from tests.conftest import POSTGRES_URL

#: Redis database for stock CKAN's RQ in these runs (CKAN's fixtures empty every RQ queue in it).
RQ_REDIS_URL = os.environ.get("OFFLOAD_TEST_CKAN_RQ_REDIS_URL", "redis://127.0.0.1:6379/13")
SITE_PACKAGES = Path(subprocess.run([str(CKAN_PYTHON), "-c", "import ckan, os; print(os.path.dirname("
                                     "os.path.dirname(ckan.__file__)))"], capture_output=True, text=True,
                                    check=False).stdout.strip() or CKAN_VENV)


def _db_url(db: str, user: str = "postgres") -> str:
    base = POSTGRES_URL.rsplit("/", 1)[0]
    return re.sub(r"://[^@/]*@", f"://{user}@", base) + f"/{db}"


def _settings(main_db: str, ds_db: str, reader: str, solr_port: int) -> dict[str, str]:
    """The settings of CKAN's test-core.ini that its tests rely on, pointed at this run's services."""
    return {
        "debug": "false",
        "testing": "true",
        "SECRET_KEY": "offload-ckan-suite-secret",
        "sqlalchemy.url": _db_url(main_db),
        "ckan.datastore.write_url": _db_url(ds_db),
        "ckan.datastore.read_url": _db_url(ds_db, reader),
        "ckan.datastore.sqlsearch.enabled": "true",
        "ckan.datastore.sqlsearch.allowed_functions_file":
            str(SITE_PACKAGES / "ckanext" / "datastore" / "allowed_functions.txt"),
        "solr_url": f"http://127.0.0.1:{solr_port}/solr/ckan",
        "ckan.redis.url": RQ_REDIS_URL,
        "ckan.files.default_storages.default": "test",
        "ckan.files.storage.test.type": "ckan:memory",
        "ckan.auth.user_create_organizations": "true",
        "ckan.auth.user_create_groups": "true",
        "ckan.auth.create_user_via_api": "false",
        "ckan.auth.create_user_via_web": "false",
        "ckan.auth.create_dataset_if_not_in_organization": "true",
        "ckan.auth.anon_create_dataset": "false",
        "ckan.auth.user_delete_groups": "true",
        "ckan.auth.user_delete_organizations": "true",
        "ckan.auth.create_unowned_dataset": "true",
        "ckan.auth.create_default_api_keys": "true",
        "ckan.cache_enabled": "False",
        "ckan.site_id": "test.ckan.net",
        "ckan.site_url": "http://test.ckan.net",
        "SESSION_COOKIE_DOMAIN": "test.ckan.net",
        "ckan.extra_resource_fields": "alt_url",
        "apitoken_header_name": "Authorization",
        "ckan.plugins": "",
        "smtp.mail_from": "info@test.ckan.net",
        "ckan.locale_default": "en",
        "ckan.datasets_per_page": "20",
        "ckan.activity_streams_email_notifications": "True",
        "WTF_CSRF_ENABLED": "false",
        "ckan.jobs.timeout": "180",
    }


def _apply_sql(script: str) -> None:
    """Run ``ckan datastore set-permissions``'s script as psql would (its ``\\connect`` lines switch database)."""
    import psycopg

    conn = None
    statements: list[str] = []

    def flush() -> None:
        if conn is not None and statements:
            conn.execute("\n".join(statements).encode())
        statements.clear()

    try:
        for line in script.splitlines():
            match = re.match(r"\\connect\s+(\S+)", line)
            if match:
                flush()
                if conn is not None:
                    conn.close()
                conn = psycopg.connect(_db_url(match.group(1).strip('"')), autocommit=True)
            elif not line.startswith("\\"):
                statements.append(line)
        flush()
    finally:
        if conn is not None:
            conn.close()


@dataclass
class Suite:
    """One prepared environment for a run of CKAN's tests."""

    dir: Path
    ini: Path
    env: dict[str, str]
    databases: list[str]
    reader: str

    def run(self, modules: list[str], junit: Path, offload: bool, keywords: str | None = None,
            timeout: float = 3000, extra: list[str] | None = None) -> subprocess.CompletedProcess[str]:
        """``pytest --ckan-ini=INI MODULES`` in the CKAN venv (with offload's pytest plugin when ``offload``)."""
        args = [str(CKAN_PYTHON), "-m", "pytest", "-c", str(self.dir / "pytest.ini"), "--rootdir", str(self.dir),
                f"--ckan-ini={self.ini}", f"--junitxml={junit}", "-q", "-p", "no:cacheprovider"]
        if offload:
            args += ["-p", "offload.contrib.ckan.pytest_plugin"]
        if keywords:
            args += ["-k", keywords]
        args += extra or []
        args += [str(SITE_PACKAGES / module) for module in modules]
        return subprocess.run(args, capture_output=True, text=True, env=self.env, cwd=self.dir, timeout=timeout)

    def close(self) -> None:
        for db in self.databases:
            _admin_db(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        _admin_db(f'DROP ROLE IF EXISTS "{self.reader}"')


#: What CKAN's pyproject.toml gives pytest: its markers (``--strict-markers``) and warning filter.
PYTEST_INI = """[pytest]
filterwarnings = ignore::DeprecationWarning
markers =
    ckan_config: patch configuration used by other fixtures via (key, value) pair.
    provide_plugin: register class as a plugin
    with_plugins: enable specified plugins
addopts = --strict-markers
junit_family = xunit1
"""


def prepare(base: Path, solr_port: int, name: str, extra: dict[str, str] | None = None) -> Suite:
    """Databases, roles and the test ini for one run (``extra``: settings to add, e.g. the offload store)."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "pytest.ini").write_text(PYTEST_INI)
    main_db, ds_db = f"ckan_suite_{RUN_ID}_{name}", f"ckan_suite_ds_{RUN_ID}_{name}"
    reader = f"ckan_suite_read_{RUN_ID}_{name}"
    suite = Suite(base, base / "test.ini", {}, [], reader)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OFFLOAD_", "CKAN_"))}
    env["PYTHONUNBUFFERED"] = "1"
    suite.env = env
    _admin_db(f'DROP ROLE IF EXISTS "{reader}"')
    _admin_db(f'CREATE ROLE "{reader}" LOGIN')
    for db in (main_db, ds_db):
        _admin_db(f'CREATE DATABASE "{db}"')
        suite.databases.append(db)
    import psycopg

    with psycopg.connect(_db_url(ds_db), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS tablefunc")
    subprocess.run([str(CKAN), "generate", "config", str(suite.ini)], check=True, capture_output=True, env=env,
                   timeout=120)
    settings = {**_settings(main_db, ds_db, reader, solr_port), **(extra or {})}
    subprocess.run([str(CKAN), "config-tool", str(suite.ini), *(f"{k}={v}" for k, v in settings.items())],
                   check=True, capture_output=True, env=env, timeout=120)
    init = subprocess.run([str(CKAN), "-c", str(suite.ini), "db", "init"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert init.returncode == 0, init.stderr[-3000:]
    sql = subprocess.run([str(CKAN), "-c", str(suite.ini), "datastore", "set-permissions"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert sql.returncode == 0, sql.stderr[-3000:]
    _apply_sql(sql.stdout)
    return suite


def outcomes(junit: Path) -> dict[str, str]:
    """``{test id: passed | failed | error | skipped}`` from a JUnit XML report."""
    found: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        outcome = "failed" if "failure" in kinds else "error" if "error" in kinds else (
            "skipped" if "skipped" in kinds else "passed")
        if found.get(test_id) in ("failed", "error"):
            continue  # an error in teardown after a failure: the failure stands
        found[test_id] = outcome
    return found
