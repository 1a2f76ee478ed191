"""The PostgreSQL store's schema migrations: the files ``sql/postgres_NNNN_*.sql``, applied in order.

Every migration the schema lacks is applied by one statement, a ``DO`` block: it takes the transaction-level
advisory lock ``pg_advisory_xact_lock`` (so that workers starting together do not race to create the same
tables), creates the schema and the ``schema_version`` table when missing, then runs each script the table
does not list yet, with ``search_path`` set to the schema for that transaction only. One statement is one
transaction whatever sits between offload and the server: it needs no session state and no transaction block,
so it runs the same directly and behind a transaction or statement pooler.
"""

from __future__ import annotations

import os
import re

from offload.errors import StoreError

_MIGRATION_RE = re.compile(r"postgres_(\d{4})_\w+\.sql")


def migrations() -> list[tuple[int, str]]:
    """The schema migrations shipped with offload, as (version, SQL), in order."""
    found: list[tuple[int, str]] = []
    # Plain reads beside this module: the package is always installed as files (importlib.resources would add
    # ~10 ms of imports to every process that opens a PostgreSQL store).
    folder = os.path.join(os.path.dirname(__file__), "sql")
    for name in os.listdir(folder):
        match = _MIGRATION_RE.fullmatch(name)
        if match:
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                found.append((int(match.group(1)), f.read()))
    found.sort()
    if [version for version, _ in found] != list(range(1, len(found) + 1)):
        raise StoreError(f"offload's PostgreSQL migrations are not numbered 1..n ({[v for v, _ in found]}) in "
                         f"{folder}: the installation is damaged; reinstall offload")
    return found


def _dollar_quoted(text: str, tag: str) -> str:
    if f"${tag}$" in text:
        raise StoreError(f"a PostgreSQL migration contains its own quoting tag ${tag}$; rename the tag")
    return f"${tag}${text}${tag}$"


def migration_block(schema: str, scripts: list[tuple[int, str]]) -> str:
    """The DO block that brings ``schema`` (already checked to be a plain identifier) up to the last script."""
    quoted = f'"{schema}"'
    steps = "".join(
        f"    IF applied < {number} THEN\n"
        f"        EXECUTE {_dollar_quoted(script, f'offload_{number:04d}')};\n"
        f"        INSERT INTO {quoted}.schema_version (version) VALUES ({number});\n"
        "    END IF;\n"
        for number, script in scripts
    )
    # The lock key is the one earlier versions of offload took, so that an old and a new worker starting
    # together still wait for each other.
    body = (
        "DECLARE applied integer;\n"
        "BEGIN\n"
        f"    PERFORM pg_advisory_xact_lock(hashtextextended('offload:{schema}', 0));\n"
        # Checked first: CREATE SCHEMA IF NOT EXISTS would still need the right to create schemas.
        f"    IF to_regnamespace('{quoted}') IS NULL THEN CREATE SCHEMA {quoted}; END IF;\n"
        f"    IF to_regclass('{quoted}.schema_version') IS NULL THEN\n"
        f"        CREATE TABLE {quoted}.schema_version (version integer PRIMARY KEY, "
        "applied_at timestamptz NOT NULL DEFAULT now());\n"
        "    END IF;\n"
        f"    SELECT coalesce(max(version), 0) INTO applied FROM {quoted}.schema_version;\n"
        f"    PERFORM set_config('search_path', '{quoted}', true);\n"
        f"{steps}"
        "END\n"
    )
    return f"DO {_dollar_quoted(body, 'offload_migrate')}"
