"""Bad input at every door: the CLI, the Python API, the ini file and the store URL.

Each case must fail with one line naming the problem (click's own usage errors add their "Usage:"/"Try" lines
around a single "Error:" line), exit non-zero (the CLI), and write nothing: the store holds what it held before,
and no file appears for a bad store URL. ``bad_input`` runs every case against one engine and returns the
battery's result dict; the CLI cases run as real ``offload`` processes, a few at a time.
"""

from __future__ import annotations

import datetime as dt
import functools
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offload import Offload
from tests.faults.harness import Servers, clean_env, new_site

LONG_ID = "x" * 5000
GARBAGE_IDS = {
    "a 5,000-character id": LONG_ID,
    "an empty id": "",
    "a unicode id": "ünïcödé-✓-😀",
    "a path": "../../etc/passwd",
    "SQL": "1'; DROP TABLE jobs; --",
    "control characters": "id\nwith newline\x1b[2J",
    "a Redis key pattern": "*",
}


@dataclass
class Case:
    door: str
    name: str
    args: list[str]  # offload's arguments after --store/--site-id
    expect: str  # what the error line must say (case-insensitive)
    env: dict[str, str] = field(default_factory=dict)
    store: str | None = None  # a store URL of its own (the URL door)


def cli_cases(workdir: Path) -> list[Case]:
    cases = []
    for i, (label, job_id) in enumerate(GARBAGE_IDS.items()):
        for verb in ("show", "cancel", "retry") if i < 2 else ("show",) if i % 2 else ("cancel",):
            cases.append(Case("cli: ids", f"{verb} with {label}", [verb, job_id], "There is no job with ID"))
    add = "tests.faults.jobs:record"
    cases += [
        Case("cli: JSON", "--args not JSON", ["enqueue", add, "--args", "[1,"], "not valid JSON"),
        Case("cli: JSON", "--args an object", ["enqueue", add, "--args", '{"a": 1}'], "must be a JSON array"),
        Case("cli: JSON", "--kwargs an array", ["enqueue", add, "--kwargs", "[1]"], "must be a JSON object"),
        Case("cli: JSON", "--args with NaN", ["enqueue", add, "--args", "[1, NaN]"], "nan"),
        Case("cli: JSON", "--args nested 100,000 deep", ["enqueue", add, "--args", "[" * 100_000], "not valid JSON"),
        Case("cli: JSON", "--kwargs key not a name", ["enqueue", add, "--kwargs", '{"1x": 2}'], "keyword argument"),
        Case("cli: JSON", "--args with a foreign tag", ["enqueue", add, "--args", '[{"__offload__": ["pickle", "x"]}]'],
             "unknown tagged type"),
        Case("cli: queues", "queue with a space", ["enqueue", add, "--queue", "bad queue"], "invalid queue name"),
        Case("cli: queues", "unicode queue", ["enqueue", add, "--queue", "ünï"], "invalid queue name"),
        Case("cli: queues", "101-character queue", ["list", "q" * 101], "invalid queue name"),
        Case("cli: queues", "queue with a slash", ["clear", "a/b"], "invalid queue name"),
        Case("cli: queues", "worker on a bad queue", ["worker", "bad queue", "--burst"], "invalid queue name"),
        Case("cli: functions", "not an import path", ["enqueue", "not a path"], "not an import path"),
        Case("cli: timeouts", "timeout 1e308", ["enqueue", add, "--timeout", "1e308"], "out of range"),
        Case("cli: timeouts", "timeout nan", ["enqueue", add, "--timeout", "nan"], "out of range"),
        Case("cli: timeouts", "timeout inf", ["enqueue", add, "--timeout", "inf"], "out of range"),
        Case("cli: timeouts", "timeout -5", ["enqueue", add, "--timeout", "-5"], "out of range"),
        Case("cli: timeouts", "timeout 0", ["enqueue", add, "--timeout", "0"], "out of range"),
        Case("cli: timeouts", "delay 1e308", ["enqueue", add, "--delay", "1e308"], "year 9999"),
        Case("cli: timeouts", "delay -1", ["enqueue", add, "--delay", "-1"], "--delay"),
        Case("cli: timeouts", "lease 0.001", ["worker", "--lease", "0.001", "--burst"], "--lease"),
        Case("cli: timeouts", "grace -1", ["worker", "--grace", "-1", "--burst"], "--grace"),
        Case("cli: timeouts", "purge older than -1", ["purge", "--older-than", "-1"], "older_than"),
        Case("cli: timeouts", "purge older than nan", ["purge", "--older-than", "nan"], "older_than"),
        Case("cli: options", "concurrency 0", ["worker", "--concurrency", "0", "--burst"], "--concurrency"),
        Case("cli: options", "limit 10^9", ["list", "--limit", "1000000000"], "--limit"),
        Case("cli: options", "unknown state", ["list", "--state", "bogus"], "--state"),
    ]
    ini = {
        "unknown key": ("[offload]\nstroe = sqlite:///x.db\n", "unknown setting 'stroe'"),
        "unknown key, full name": ("[offload]\noffload.workers.concurrency = 2\n", "unknown setting"),
        "concurrency not a number": ("[offload]\nworker.concurrency = lots\n", "offload.worker.concurrency"),
        "timeout not a number": ("[offload]\njobs.timeout = soon\n", "offload.jobs.timeout"),
        "lease negative": ("[offload]\nworker.lease = -3\n", "offload.worker.lease"),
        "sync not a boolean": ("[offload]\njobs.sync = maybe\n", "not a boolean"),
        "keep not a duration": ("[offload]\njobs.keep = forever\n", "offload.jobs.keep"),
        "token without a role": ("[offload]\napi.tokens = nocolon\n", "token:admin"),
        "no [offload] section": ("[other]\nx = 1\n", "no [offload] section"),
        "not an ini file": ("this is not ini\n", "not a valid ini file"),
    }
    for i, (name, (text, expect)) in enumerate(ini.items()):
        path = workdir / f"bad-{i}.ini"
        path.write_text(text)
        for verb in (["list"], ["worker", "--burst"]) if i < 3 else (["list"],):
            cases.append(Case("ini file", f"{name} ({verb[0]})", ["-c", str(path), *verb], expect))
    cases.append(Case("ini file", "missing file", ["-c", str(workdir / "nowhere.ini"), "list"], "does not exist"))
    cases.append(Case("environment", "OFFLOAD_WORKER_LEASE not a number", ["worker", "--burst"],
                      "OFFLOAD_WORKER_LEASE", env={"OFFLOAD_WORKER_LEASE": "soon"}))
    return cases


def url_cases(engine: str, workdir: Path) -> list[Case]:
    urls = {
        "sqlite": {
            "no path": ("sqlite:///", "invalid SQLite URL"),
            "a host": ("sqlite://host/x.db", "invalid SQLite URL"),
            "unknown option": (f"sqlite:///{workdir}/u.db?bogus=1", "unknown SQLite URL option"),
            "timeout not a number": (f"sqlite:///{workdir}/t.db?timeout=soon", "must be numbers"),
            "missing directory": (f"sqlite:///{workdir}/no/such/dir/x.db", "does not exist"),
        },
        "redis": {
            "port not a number": ("redis://127.0.0.1:notaport/0", "Redis URL"),
            "db not a number": ("redis://127.0.0.1:6379/abc", "Redis URL"),
            "unknown option": ("redis://127.0.0.1:6379/0?bogus=1", "unknown Redis URL option"),
            "nothing listening": ("redis://127.0.0.1:1/0?connect_timeout=1", "unavailable"),
        },
        "postgresql": {
            "unknown option": ("postgresql://postgres@127.0.0.1:1/x?bogus=1", "bogus"),
            "bad schema name": ("postgresql://postgres@127.0.0.1:1/x?schema=bad-name!", "schema"),
            "nothing listening": ("postgresql://postgres@127.0.0.1:1/x?connect_timeout=1", "cannot connect"),
        },
    }[engine]
    cases = [Case("store URL", name, ["list"], expect, store=url) for name, (url, expect) in urls.items()]
    cases.append(Case("store URL", "unknown scheme", ["list"], "unknown store URL scheme", store="mysql://db/x"))
    cases.append(Case("store URL", "not a URL", ["list"], "store URL", store="just some words"))
    return cases


def error_lines(stderr: str) -> list[str]:
    """The lines of an error message: click's usage preamble around its "Error:" line is not counted."""
    return [line for line in stderr.splitlines()
            if line.strip() and not line.startswith(("Usage:", "Try '"))]


def check_cli(case: Case, out: subprocess.CompletedProcess[str]) -> str | None:
    lines = error_lines(out.stderr)
    if out.returncode == 0:
        return f"exit 0, stdout {out.stdout[:120]!r}"
    if "Traceback" in out.stderr:
        return f"a traceback: {out.stderr.strip().splitlines()[-1][:200]}"
    if len(lines) != 1:
        return f"{len(lines)} error lines: {lines[:3]}"
    if case.expect.lower() not in lines[0].lower():
        return f"the error does not say {case.expect!r}: {lines[0][:200]}"
    return None


def run_cli(case: Case, url: str, site: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**clean_env(), **case.env}
    args = [sys.executable, "-m", "offload", "--store", case.store or url, "--site-id", site, *case.args]
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


# -- the Python API --------------------------------------------------------------------------------------------
class _Holder:
    def method(self) -> None:
        pass


def _nested() -> Callable[[], None]:
    def inner() -> None:
        pass

    return inner


def api_cases() -> list[tuple[str, Callable[[Offload], Any], str]]:
    """(what is bad, a call on the app, what the error must say)."""
    add = "tests.faults.jobs:record"
    return [
        ("args with an object", lambda app: app.enqueue(add, [object()]), "cannot serialise"),
        ("args with a set", lambda app: app.enqueue(add, [{1, 2}]), "args[0]"),
        ("kwargs with a non-string key", lambda app: app.enqueue(add, kwargs={1: 2}), "keyword argument"),
        ("args with NaN", lambda app: app.enqueue(add, [float("nan")]), "finite"),
        ("args not a list", lambda app: app.enqueue(add, "abc"), "args must be a list"),
        ("a lambda", lambda app: app.enqueue(lambda: None), "lambda"),
        ("a nested function", lambda app: app.enqueue(_nested()), "inside another function"),
        ("a bound method", lambda app: app.enqueue(_Holder().method), "bound method"),
        ("a functools.partial", lambda app: app.enqueue(functools.partial(print, 1)), "partial"),
        ("not an import path", lambda app: app.enqueue("not a path"), "not an import path"),
        ("timeout 1e308", lambda app: app.enqueue(add, timeout=1e308), "out of range"),
        ("timeout NaN", lambda app: app.enqueue(add, timeout=float("nan")), "out of range"),
        ("timeout True", lambda app: app.enqueue(add, timeout=True), "timeout"),
        ("timeout as text", lambda app: app.enqueue(add, timeout="10"), "timeout"),
        ("delay 1e12", lambda app: app.enqueue(add, delay=1e12), "year 9999"),
        ("at 1e300", lambda app: app.enqueue(add, at=1e300), "year 9999"),
        ("delay negative", lambda app: app.enqueue(add, delay=-1), "negative"),
        ("at and delay", lambda app: app.enqueue(add, at=dt.datetime.now(), delay=5), "either"),
        ("max_attempts 0", lambda app: app.enqueue(add, max_attempts=0), "max_attempts"),
        ("max_attempts 1.5", lambda app: app.enqueue(add, max_attempts=1.5), "max_attempts"),
        ("unique_key empty", lambda app: app.enqueue(add, unique_key=""), "unique_key"),
        ("job_id with a space", lambda app: app.enqueue(add, job_id="a b"), "invalid job id"),
        ("job_id 201 characters", lambda app: app.enqueue(add, job_id="j" * 201), "invalid job id"),
        ("queue unicode", lambda app: app.enqueue(add, queue="ünï"), "invalid queue name"),
        ("unknown option", lambda app: app.enqueue(add, retries=3), "unknown enqueue option"),
        ("meta not a dict", lambda app: app.enqueue(add, meta=[1]), "meta must be a dict"),
        ("purge older than -1", lambda app: app.purge(-1), "older_than"),
        ("list limit -1", lambda app: app.list_jobs(limit=-1), "limit"),
        ("get a 5,000-character id", lambda app: app.get_job(LONG_ID), "There is no job with ID"),
    ]


def check_api(call: Callable[[Offload], Any], app: Offload, expect: str) -> str | None:
    try:
        call(app)
    except Exception as exc:
        text = str(exc)
        if "\n" in text:
            return f"a {len(text.splitlines())}-line message: {text[:200]}"
        if expect.lower() not in text.lower():
            return f"{type(exc).__name__}: {text[:200]} (expected {expect!r})"
        return None
    return "accepted"


# -- the scenario ------------------------------------------------------------------------------------------------
def bad_input(engine: str, servers: Servers, workdir: Path, *, every_door: bool = True,
              parallel: int = 4) -> dict[str, Any]:
    """Every case against ``engine``; with ``every_door`` False only those whose handling involves the engine
    (ids looked up in the store, store URLs, the Python API), for a quicker run on a second engine."""
    url, site = servers.url(engine, workdir), new_site()
    app = Offload(store=url, site_id=site)
    app.enqueue("tests.faults.jobs:record", ["/dev/null"], queue="faults", title="already there")
    cases = [c for c in cli_cases(workdir) if every_door or c.door == "cli: ids"] + url_cases(engine, workdir)
    before = (app.store.count(), sorted(p.name for p in workdir.iterdir()))
    with ThreadPoolExecutor(parallel) as pool:
        outs = list(pool.map(lambda c: run_cli(c, url, site, workdir), cases))
    failures = []
    for case, out in zip(cases, outs, strict=True):
        problem = check_cli(case, out)
        if problem:
            failures.append(f"{case.door}: {case.name}: {problem}")
    api = api_cases()
    for name, call, expect in api:
        problem = check_api(call, app, expect)
        if problem:
            failures.append(f"python API: {name}: {problem}")
    after = (app.store.count(), sorted(p.name for p in workdir.iterdir()))
    if after != before:
        failures.append(f"something was written: {before} -> {after}")
    app.close()
    doors: dict[str, int] = {}
    for case in cases:
        doors[case.door] = doors.get(case.door, 0) + 1
    doors["python API"] = len(api)
    return {
        "scenario": "bad input",
        "engine": engine,
        "jobs": len(cases) + len(api),  # cases tried
        "executions": 0,
        "lost": 0,
        "duplicates": 0,
        "cases": len(cases) + len(api),
        "doors": doors,
        "reasons": failures,
        "verdict": "fail" if failures else "pass",
    }


if __name__ == "__main__":  # a quick look at one engine: python -m tests.faults.doors sqlite
    import json
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="doors-"))
    servers = Servers(root)
    try:
        print(json.dumps(bad_input(sys.argv[1] if len(sys.argv) > 1 else "sqlite", servers, root), indent=1))
    finally:
        servers.cleanup()
