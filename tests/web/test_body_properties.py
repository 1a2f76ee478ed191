"""Property-based tests of request bodies (hypothesis), on ``offload serve`` over real HTTP (requests):

- every registered action, sent bodies as JSON with and without ``Content-Type: application/json``, as curl's
  ``-d`` and ``--data-urlencode`` send JSON, and as forms, each with at least one unknown or misspelt parameter:
  refused (409), and the store is exactly as before;
- malformed bodies (truncated JSON, JSON that is not an object, non-UTF-8, a form field without ``=``, an
  unsupported content type): refused (400), the store exactly as before;
- never a 5xx;
- and against CKAN 2.12's own parser (``ckan.views.api._get_request_data``, run in the CKAN virtual environment):
  every body CKAN reads as a dict, offload reads as the same dict.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import flask
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offload.events import webhooks
from offload.web.actions import load_action_modules, registered_actions
from offload.web.api import request_data
from tests import jobfuncs
from tests.web.conftest import ADMIN, ROOT, Site, make_site, start_server

load_action_modules()
ACTIONS = registered_actions()
FORM = "application/x-www-form-urlencoded"
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, requests.Session, str]]:
    site = make_site("sqlite", tmp_path_factory.mktemp("bodies"))
    for queue in ("default", "mail", "qa"):
        for _ in range(2):
            site.offload.enqueue(jobfuncs.noop, queue=queue, title=f"waiting in {queue}")
    failed = site.offload.enqueue(jobfuncs.noop, queue="qa", title="to cancel")
    site.offload.cancel(failed.id)
    webhooks.add(site.offload, "https://hooks.example.org/a", ["Package"])
    _, base = start_server(site)
    with requests.Session() as session:
        session.headers["Authorization"] = ADMIN
        yield site, session, f"{base}/api/3/action"
    site.stop_all()


def snapshot(site: Site) -> tuple[Any, ...]:
    jobs = sorted(json.dumps(j.to_dict(), sort_keys=True) for j in site.offload.store.list(limit=100_000))
    hooks = sorted(json.dumps(h, sort_keys=True) for h in webhooks.list_all(site.offload))
    return tuple(jobs), tuple(hooks)


# -- strategies ---------------------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)


def misspellings(name: str) -> list[str]:
    """What a hand slips to: a letter dropped, doubled, two swapped, a plural added or dropped, capitals."""
    out = {name[:i] + name[i + 1:] for i in range(len(name))}
    out |= {name[:i] + name[i] + name[i:] for i in range(len(name))}
    out |= {name[:i] + name[i + 1] + name[i] + name[i + 2:] for i in range(len(name) - 1)}
    out |= {name + "s", name[:-1] if name.endswith("s") else name + "_", name.capitalize(), name.upper(), f" {name}"}
    return sorted(k for k in out if k)


@st.composite
def unknown_key(draw: st.DrawFn, params: list[str]) -> str:
    slips = sorted({m for p in params for m in misspellings(p)} - set(params))
    choices = st.sampled_from(slips) if slips else st.nothing()
    return draw((choices | st.text(min_size=1, max_size=30)).filter(lambda k: k not in params))


def encode(kind: str, data: dict[str, Any]) -> tuple[bytes, str | None]:
    """A body and its Content-Type as each client sends it."""
    text = json.dumps(data)
    if kind == "json":                       # curl -H 'Content-Type: application/json' -d, requests json=
        return text.encode(), "application/json"
    if kind == "json-untyped":               # requests.post(data=json.dumps(...))
        return text.encode(), None
    if kind == "curl-d":                     # curl -d '{...}'
        return text.encode(), FORM
    if kind == "curl-data-urlencode":        # curl --data-urlencode '{...}'
        return quote(text, safe="").encode(), FORM
    pairs = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in data.items()]
    return urlencode(pairs).encode(), FORM  # requests.post(data={...})


@st.composite
def with_unknown_keys(draw: st.DrawFn) -> tuple[str, bytes, str | None]:
    name = draw(st.sampled_from(sorted(ACTIONS)))
    params = list(ACTIONS[name].params)
    data: dict[str, Any] = {}
    for param in draw(st.lists(st.sampled_from(params), unique=True)) if params else []:
        data[param] = draw(json_values)
    for key in draw(st.lists(unknown_key(params), min_size=1, max_size=3, unique=True)):
        data[key] = draw(json_values)
    body, content_type = encode(draw(st.sampled_from(
        ["json", "json-untyped", "curl-d", "curl-data-urlencode", "form"])), data)
    return name, body, content_type


@st.composite
def malformed(draw: st.DrawFn) -> tuple[str, bytes, str | None]:
    name = draw(st.sampled_from(sorted(ACTIONS)))
    text = json.dumps(draw(st.dictionaries(st.text(min_size=1, max_size=8), json_values, min_size=1, max_size=3)))
    kind = draw(st.sampled_from(["truncated", "not-an-object", "not-utf8", "no-equals", "nan", "unsupported"]))
    content_type = draw(st.sampled_from([None, "application/json", FORM, "text/plain"]))
    if kind == "truncated":
        body = text[:draw(st.integers(1, len(text) - 1))]
    elif kind == "not-an-object":
        body = json.dumps(draw(st.lists(json_values, max_size=3) | st.text(max_size=10) | st.integers() | st.none()))
    elif kind == "not-utf8":
        return name, b"\xff\xfe" + text.encode(), content_type
    elif kind == "no-equals":
        body = draw(st.text(st.characters(exclude_characters="=&{[%+", exclude_categories=["Cs"]), min_size=1,
                            max_size=20).filter(lambda t: t.strip()))
        content_type = draw(st.sampled_from([None, FORM, "text/plain"]))
    elif kind == "nan":
        body = '{"limit": NaN}'
    else:
        content_type = draw(st.sampled_from(["application/xml", "application/octet-stream", "image/png"]))
        body = text
    return name, body.encode(), content_type


def post(session: requests.Session, url: str, body: bytes, content_type: str | None) -> requests.Response:
    request = requests.Request("POST", url, data=body)
    prepared = session.prepare_request(request)
    if content_type is None:
        prepared.headers.pop("Content-Type", None)
    else:
        prepared.headers["Content-Type"] = content_type
    return session.send(prepared, timeout=30)


# -- properties ---------------------------------------------------------------------------------------------------
def test_unknown_and_misspelt_parameters_change_nothing(served: tuple[Site, requests.Session, str]) -> None:
    site, session, api = served
    before = snapshot(site)

    @SETTINGS
    @given(with_unknown_keys())
    def check(case: tuple[str, bytes, str | None]) -> None:
        name, body, content_type = case
        response = post(session, f"{api}/{name}", body, content_type)
        assert response.status_code in (400, 409), (name, body, content_type, response.text[:300])
        error = response.json()["error"]
        assert error["__type"] in ("Validation Error", "Bad Request Error"), error
        if response.status_code == 409:
            assert any(v and "Unknown parameter" in v[0] for v in error.values() if isinstance(v, list)), error
        assert snapshot(site) == before, (name, body, content_type)

    check()


def test_malformed_bodies_change_nothing(served: tuple[Site, requests.Session, str]) -> None:
    site, session, api = served
    before = snapshot(site)

    @SETTINGS
    @given(malformed())
    def check(case: tuple[str, bytes, str | None]) -> None:
        name, body, content_type = case
        response = post(session, f"{api}/{name}", body, content_type)
        assert response.status_code == 400, (name, body, content_type, response.text[:300])
        assert response.json()["error"]["__type"] == "Bad Request Error"
        assert snapshot(site) == before, (name, body, content_type)

    check()


def test_get_with_unknown_query_parameters(served: tuple[Site, requests.Session, str]) -> None:
    _site, session, api = served
    for name, act in ACTIONS.items():
        if act.side_effect_free:
            response = session.get(f"{api}/{name}", params={"limt": "5", "callback": "x"}, timeout=10)
            assert response.status_code == 409, (name, response.text)
            assert set(response.json()["error"]) >= {"limt", "callback"}


# -- the same reading as CKAN's ------------------------------------------------------------------------------------
CKAN_PYTHON = ROOT / os.environ.get("OFFLOAD_CKAN_VENV", ".ckan-venv") / "bin" / "python"
CKAN_READER = textwrap.dedent("""
    import json, sys
    import flask
    from ckan.views.api import _get_request_data
    app = flask.Flask("reader")
    for line in sys.stdin:
        body, content_type = json.loads(line)
        with app.test_request_context("/", method="POST", data=body.encode(), content_type=content_type):
            try:
                answer = ["dict", _get_request_data()]
            except Exception as exc:
                answer = ["error", type(exc).__name__]
        print(json.dumps(answer), flush=True)
""")


@pytest.fixture(scope="module")
def ckan_reader() -> Iterator[subprocess.Popen[str]]:
    if not CKAN_PYTHON.exists():
        if os.environ.get("OFFLOAD_REQUIRE_SERVICES"):
            pytest.fail(f"no CKAN venv at {CKAN_PYTHON.parent.parent} (run scripts/ckan-env)")
        pytest.skip(f"no CKAN venv at {CKAN_PYTHON.parent.parent} (run scripts/ckan-env)")
    proc = subprocess.Popen([str(CKAN_PYTHON), "-c", CKAN_READER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    yield proc
    proc.stdin.close()  # type: ignore[union-attr]
    proc.wait(10)


def ckan_reads(proc: subprocess.Popen[str], body: str, content_type: str) -> list[Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps([body, content_type]) + "\n")
    proc.stdin.flush()
    answer: list[Any] = json.loads(proc.stdout.readline())
    return answer


READER_APP = flask.Flask("reader")


def offload_reads(body: str, content_type: str) -> dict[str, Any]:
    with READER_APP.test_request_context("/", method="POST", data=body.encode(), content_type=content_type):
        return request_data()[0]


# curl -d sends the JSON text as a form: '&', '=', '+' and '%' mean something in a form, so CKAN reads such a body
# as a form of several fields (offload reads it as the JSON it is: tested above). Without them the two must agree.
plain_text = st.text(st.characters(exclude_characters="&=+%", exclude_categories=["Cs"]), max_size=12)
plain_json = st.recursive(st.none() | st.booleans() | st.integers(-1000, 1000) | plain_text,
                          lambda inner: st.lists(inner, max_size=3), max_leaves=5)
form_text = st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=12)


@st.composite
def ckan_cases(draw: st.DrawFn) -> tuple[str, str]:
    kind = draw(st.sampled_from(["curl-d", "curl-data-urlencode", "json", "form"]))
    if kind == "curl-d":
        data = draw(st.dictionaries(plain_text.filter(bool), plain_json, min_size=1, max_size=3))
        return json.dumps(data), FORM
    if kind in ("curl-data-urlencode", "json"):
        data = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3))
        text = json.dumps(data)
        return (quote(text, safe=""), FORM) if kind == "curl-data-urlencode" else (text, "application/json")
    pairs = draw(st.lists(st.tuples(form_text.filter(lambda k: not k.lstrip().startswith(("{", "["))), form_text),
                          min_size=1, max_size=4))
    return urlencode(pairs), FORM


def test_bodies_are_read_as_ckan_reads_them(ckan_reader: subprocess.Popen[str]) -> None:
    @SETTINGS
    @given(ckan_cases())
    def check(case: tuple[str, str]) -> None:
        body, content_type = case
        kind, ckan = ckan_reads(ckan_reader, body, content_type)
        if kind == "dict":
            assert offload_reads(body, content_type) == ckan, (body, content_type)

    check()
