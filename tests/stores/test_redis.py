"""The Redis engine beyond the contract: URLs, outages, the key layout and the bookkeeping the scripts keep."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest

redis = pytest.importorskip("redis")

from offload.errors import StoreError, StoreUnavailable, StoreURLError  # noqa: E402
from offload.jobs import (  # noqa: E402
    CANCELED,
    DONE_STATES,
    FAILED,
    FINISHED,
    PENDING_STATES,
    QUEUED,
    SCHEDULED,
    STARTED,
    Job,
    Outcome,
    WorkerInfo,
)
from offload.stores import open_store  # noqa: E402
from offload.stores.base import mark_stored  # noqa: E402
from offload.stores.redis import RedisStore, _pack  # noqa: E402
from tests.conftest import engine_url, service_missing  # noqa: E402
from tests.stores.conftest import make_job  # noqa: E402

LEASE = 30.0
SECRET = "hunter2-not-in-logs"


@pytest.fixture
def url(tmp_path: Any) -> str:
    return engine_url("redis", tmp_path)


@pytest.fixture(params=["functions", "evalsha"])
def lua_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How the store runs its Lua: as a Redis Functions library (Redis 7+, as here), or as EVALSHA scripts, as on
    Redis 6.2 (forced)."""
    if request.param == "evalsha":
        monkeypatch.setattr(RedisStore, "use_functions", False)
    return str(request.param)


@pytest.fixture
def make(url: str, lua_mode: str) -> Iterator[Callable[..., RedisStore]]:
    opened: list[RedisStore] = []

    def make(site: str | None = None) -> RedisStore:
        store = open_store(url, site or f"r{uuid.uuid4().hex[:12]}")
        assert isinstance(store, RedisStore)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make: Callable[..., RedisStore]) -> RedisStore:
    return make()


@pytest.fixture
def server(url: str) -> Iterator[Any]:
    """A plain client on the test server, to look at what the store wrote."""
    client = redis.Redis.from_url(url.split("?")[0], decode_responses=True)
    yield client
    client.close()


def site_keys(server: Any, store: RedisStore) -> set[str]:
    return set(server.scan_iter(match=store.base + "*", count=1000))


# -- URLs and errors ------------------------------------------------------------------------------------
def test_unreachable_server_is_one_clear_error_without_the_password() -> None:
    url = f"redis://:{SECRET}@127.0.0.1:1/0?prefix=offload-test&connect_timeout=2"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as info:
        open_store(url, "site")
    message = str(info.value)
    assert time.monotonic() - started < 5, "no retry storm before giving up"
    assert SECRET not in message and "redis://:***@127.0.0.1:1/0" in message
    assert "\n" not in message and "refused" in message.lower()
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unknown_or_malformed_url_options_are_refused(url: str) -> None:
    with pytest.raises(StoreURLError, match="colour"):
        RedisStore(url + "&colour=blue", "site")
    with pytest.raises(StoreURLError, match="ssl_cert_reqs"):
        RedisStore(url + "&ssl_cert_reqs=none", "site")  # a TLS option on a plain redis:// URL
    for bad in ("redis://127.0.0.1:notaport/0", "redis://127.0.0.1:6379/db7", "redis://h/0?timeout=soon",
                "redis://h/0?prefix="):
        with pytest.raises(StoreURLError):
            RedisStore(bad, "site")
    # TLS options belong to rediss:// URLs; nothing connects until open().
    assert RedisStore("rediss://h:6380/2?ssl_cert_reqs=none&prefix=p", "site").key_prefix == "p"


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("ssl_cert_reqs=sometimes", "ssl_cert_reqs must be none, optional or required"),
        ("ssl_ca_certs=/nonexistent/ca.pem", "cannot load its TLS certificates or key"),
        ("ssl_certfile=/nonexistent/cert.pem", "cannot load its TLS certificates or key"),
        ("ssl_keyfile=/nonexistent/key.pem", "ssl_keyfile needs ssl_certfile"),
    ],
)
def test_bad_tls_options_are_refused_before_anything_connects(query: str, says: str) -> None:
    with pytest.raises(StoreURLError, match=says) as info:
        RedisStore(f"rediss://:{SECRET}@h:6380/0?{query}", "site")
    assert SECRET not in str(info.value) and "\n" not in str(info.value)


def test_keys_live_under_the_prefix_and_the_site(store: RedisStore, server: Any, url: str) -> None:
    prefix = parse_qs(urlsplit(url).query)["prefix"][-1]
    site = store.site_id
    assert store.base == f"{prefix}:{{{site}}}:"
    now = time.time()
    store.enqueue_many([make_job("a", unique_key="u1"), make_job("b", now=now, run_at=now + 60)], now)
    job = store.claim(["a"], "w1", LEASE, 1, now)[0]
    store.settle([Outcome(job.id, job.lease_token or "", "finish", result_json="1", ended_at=now)], now)
    store.enqueue(make_job("a"), now)
    store.register_worker(WorkerInfo("w1", "host", 1, ["a"], 1, now, now))
    store.put_record("webhook", "h1", {"url": "https://example.org"})
    store.enqueue_periodic("nightly", 1_800_000_000.0, make_job("c"), now)
    assert not store.wait_for_work(["c-empty"], 0.01)
    keys = set(server.scan_iter(match=f"*{site}*", count=1000))
    assert keys and all(key.startswith(store.base) for key in keys), keys
    assert f"{store.base}q:{store.qname('a')}" in keys, "queues are stored as <site>:<queue>"
    assert server.get(f"{prefix}:schema") == "1"


# -- bookkeeping ----------------------------------------------------------------------------------------
UNIQUE_KEYS = {f"k{i}" for i in range(8)}


def check_books(store: RedisStore, server: Any, thorough: bool) -> set[str]:
    """counts(), count() and list() agree with each other and with every index the scripts keep."""
    jobs = store.list(limit=1_000_000)
    recount = Counter((j.queue, j.state) for j in jobs)
    expected: dict[str, dict[str, int]] = {}
    for (queue, state), n in recount.items():
        expected.setdefault(queue, {})[state] = n
    assert store.counts() == expected
    assert store.count() == len(jobs)
    created = [j.created_at for j in jobs]
    assert created == sorted(created)

    base = store.base
    queues = sorted({q for q, _ in recount} | {"a", "b", "c"})
    look = server.pipeline(transaction=False)
    for queue in queues:
        look.lrange(f"{base}q:{store.qname(queue)}", 0, -1)
        for state in (SCHEDULED, QUEUED, *DONE_STATES):
            look.zcard(f"{base}s:{store.qname(queue)}:{state}")
    look.zcard(base + "lease")
    look.zcard(base + "sched")
    look.zcard(base + "done")
    found = iter(look.execute())
    for queue in queues:
        queued = [j.id for j in jobs if j.queue == queue and j.state == QUEUED]
        assert sorted(next(found)) == sorted(queued)
        for state in (SCHEDULED, QUEUED, *DONE_STATES):
            assert next(found) == recount[queue, state], (queue, state)
    by_state = Counter(j.state for j in jobs)
    assert next(found) == by_state[STARTED]
    assert next(found) == by_state[SCHEDULED]
    assert next(found) == sum(by_state[s] for s in DONE_STATES)
    held = {j.unique_key: j.id for j in jobs if j.unique_key and j.state in PENDING_STATES}
    names = sorted(UNIQUE_KEYS | set(held))
    stored = dict(zip(names, server.mget([f"{base}u:{name}" for name in names]), strict=True))
    assert {name: job_id for name, job_id in stored.items() if job_id is not None} == held
    if not thorough:
        return set(by_state)
    assert [j.id for j in store.list(limit=1_000_000, descending=True)] == [j.id for j in reversed(jobs)]
    for (queue, state), n in recount.items():
        assert store.count([queue], [state]) == n
        assert [j.id for j in store.list([queue], [state], limit=1_000_000)] == [
            j.id for j in jobs if j.queue == queue and j.state == state
        ]
    for state in {s for _, s in recount}:
        page = store.list(states=[state, FAILED], limit=3, offset=1)
        assert [j.id for j in page] == [j.id for j in jobs if j.state in (state, FAILED)][1:4]
    page = store.list(queues=["a", "c"], limit=4, offset=2, descending=True)
    assert [j.id for j in page] == [j.id for j in reversed(jobs) if j.queue in ("a", "c")][2:6]
    return set(by_state)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counts_stay_right_through_every_transition(store: RedisStore, server: Any, seed: int) -> None:
    rng = random.Random(seed)
    seen: set[str] = set()
    now = 1_800_000_000.0
    queues = ["a", "b", "c"]
    held: dict[str, Job] = {}

    def new_job(**fields: Any) -> Job:
        run_at = now + rng.choice([5, 50]) if rng.random() < 0.2 else None
        key = rng.choice(sorted(UNIQUE_KEYS)) if rng.random() < 0.3 else None
        fields = {"unique_key": key, **fields}
        return make_job(rng.choice(queues), now=now + rng.choice([0.0, 0.5]), run_at=run_at, **fields)

    store.enqueue_many([new_job() for _ in range(60)], now)
    for step in range(160):
        now += rng.choice([0.0, 1.0, 10.0])
        action = rng.randrange(12)
        known = [j.id for j in store.list(limit=1_000)]
        if action <= 2:
            order = rng.sample(queues, k=rng.randint(1, 3))
            lease = 5.0 if rng.random() < 0.3 else LEASE
            for job in store.claim(order, f"w{rng.randrange(3)}", lease, rng.randint(1, 6), now):
                held[job.id] = job
        elif action <= 4 and held:
            chosen = rng.sample(list(held.values()), k=min(len(held), rng.randint(1, 5)))
            outcomes = []
            for job in chosen:
                kind = rng.choice(["finish", "fail", "retry", "release"])
                token = job.lease_token if rng.random() < 0.9 else "stale"
                outcomes.append(Outcome(job.id, token or "", kind, result_json="1", error={"type": "E"},
                                        retry_at=now + rng.choice([0, 20]), ended_at=now))
                held.pop(job.id)
            store.settle(outcomes, now)
        elif action == 5:
            for job in store.requeue_expired(now + rng.choice([0.0, 40.0])):
                held.pop(job.id, None)
        elif action == 6 and known:
            store.cancel(rng.choice(known), now)
        elif action == 7 and known:
            store.retry_now(rng.choice(known), now)
        elif action == 8 and known:
            store.delete(rng.choice(known))
        elif action == 9:
            reused = [new_job(id=rng.choice(known))] if known else []
            store.enqueue_many([new_job() for _ in range(rng.randint(1, 8))] + reused, now)
        elif action == 10:
            store.purge(now - rng.choice([0, 20]), limit=rng.randint(1, 5))
        elif action == 11 and rng.random() < 0.3:
            store.clear(rng.sample(queues, k=1) if rng.random() < 0.7 else None)
        if held:
            store.extend_leases("w", {j.id: j.lease_token or "" for j in held.values()}, LEASE, now)
        seen |= check_books(store, server, thorough=step % 10 == 0)
    check_books(store, server, thorough=True)
    assert seen == {SCHEDULED, QUEUED, STARTED, FINISHED, FAILED, CANCELED}


def test_nothing_is_left_behind_once_jobs_are_gone(store: RedisStore, server: Any) -> None:
    now = time.time()
    store.enqueue_many(
        [make_job("a", unique_key=f"u{i}") for i in range(6)]
        + [make_job("b", now=now, run_at=now + 60 + i) for i in range(3)]
        + [make_job("c") for _ in range(3)],
        now,
    )
    claimed = store.claim(["a"], "w1", LEASE, 4, now)
    finished, failed, retried, released = claimed
    store.settle(
        [
            Outcome(finished.id, finished.lease_token or "", "finish", result_json="1", ended_at=now),
            Outcome(failed.id, failed.lease_token or "", "fail", error={"type": "E"}, ended_at=now),
            Outcome(retried.id, retried.lease_token or "", "retry", error={}, retry_at=now + 5, ended_at=now),
            Outcome(released.id, released.lease_token or "", "release"),
        ],
        now,
    )
    running = store.claim(["c"], "w1", LEASE, 1, now)[0]
    store.cancel(store.list(["b"], [SCHEDULED], limit=1)[0].id, now)
    assert {k[len(store.base):].split(":")[0] for k in site_keys(server, store)} >= {"j", "q", "s", "u"}

    assert store.delete(running.id)
    assert store.clear() == 8  # a: 2 queued, 1 released, 1 retried; b: 2 scheduled; c: 2 queued
    assert store.purge(now + 1) == 3  # finished, failed, canceled
    assert store.count() == 0 and store.counts() == {}
    assert site_keys(server, store) == {store.base + "seq"}


# -- waiting for work -----------------------------------------------------------------------------------
def test_an_idle_wait_blocks_instead_of_polling(store: RedisStore) -> None:
    now = time.time()
    store.enqueue(make_job("elsewhere"), now)
    store.enqueue(make_job(now=now, run_at=now + 3600), now)
    cpu, started = time.thread_time(), time.monotonic()
    assert not store.wait_for_work(["default"], 0.5)
    assert time.monotonic() - started >= 0.45
    assert time.thread_time() - cpu < 0.05


def test_idle_waiters_wake_in_turn_as_each_claims(make: Callable[..., RedisStore]) -> None:
    producer = make()
    site = producer.site_id
    woke: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(3)

    def work() -> None:
        store = make(site)
        ready.wait()
        if store.wait_for_work(["default"], 5.0):
            with lock:
                woke.append(time.monotonic())
            assert len(store.claim(["default"], "w", LEASE, 1, time.time())) == 1

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    ready.wait()
    time.sleep(0.1)
    sent = time.monotonic()
    producer.enqueue_many([make_job(), make_job()], time.time())
    for t in threads:
        t.join(10)
    assert len(woke) == 2 and max(woke) - sent < 2.0
    assert producer.count(states=[STARTED]) == 2


def test_a_waiter_notices_an_earlier_scheduled_job(make: Callable[..., RedisStore]) -> None:
    waiter = make()
    producer = make(waiter.site_id)
    now = time.time()
    producer.enqueue(make_job(now=now, run_at=now + 3600), now)
    threading.Timer(0.1, lambda: producer.enqueue(make_job(now=time.time(), run_at=time.time() + 0.3),
                                                  time.time())).start()
    started = time.monotonic()
    assert waiter.wait_for_work(["default"], 5.0)
    assert 0.3 <= time.monotonic() - started < 2.0


def assert_close_ends_a_wait(store: RedisStore, queue: str) -> None:
    """A wait_for_work blocked in another thread returns False soon after ``close()``."""
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(store.wait_for_work([queue], 10.0)))
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    store.close()
    thread.join(5)
    assert result == [False] and time.monotonic() - started < 2.0


def test_close_ends_a_wait_in_another_thread(store: RedisStore) -> None:
    assert_close_ends_a_wait(store, "default")


def test_a_waiting_claim_runs_in_the_same_exchange_as_the_wait(make: Callable[..., RedisStore]) -> None:
    waiter = make()
    producer = make(waiter.site_id)
    exchanges: list[int] = []
    real = waiter._exchange

    def counted(commands: Any, read_timeout: float | None = None, acknowledged: bool = False) -> list[Any]:
        exchanges.append(len(commands))
        return real(commands, read_timeout, acknowledged)

    waiter._exchange = counted  # type: ignore[method-assign]
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(waiter.wait_and_claim(["default"], "w", LEASE, 3, 10.0)))
    thread.start()
    time.sleep(0.2)
    job = producer.enqueue(make_job(), time.time())
    thread.join(10)
    [claimed] = got
    assert [j.id for j in claimed] == [job.id]
    assert exchanges == [6, 2], ("one look (paused, limits, started counts, ZRANGE, TIME, EXISTS), then the BLPOP "
                                 "with the claim behind it")
    assert claimed[0].started_at >= job.enqueued_at - 0.01


def test_a_waiting_claim_whose_lua_was_lost_claims_after_loading_it(
    private_server: tuple[int, Callable[..., subprocess.Popen[bytes]]], lua_mode: str
) -> None:
    with private_store(private_server, "lost") as (store, client):
        now = time.time()
        job = store.enqueue(make_job(now=now, run_at=now + 0.3), now)
        client.function_flush()
        client.script_flush()
        # The wait ends when the job falls due; the claim sent behind it finds no Lua and is made again.
        claimed = store.wait_and_claim(["default"], "w", LEASE, 1, 5.0)
        assert claimed is not None and [j.id for j in claimed] == [job.id]


# -- precision ------------------------------------------------------------------------------------------
def test_times_round_trip_exactly(store: RedisStore) -> None:
    now = 1795303346.2273543
    job = make_job(now=now, run_at=now + 0.1234567891, timeout=12.345678901)
    store.enqueue(job, now)
    got = store.get(job.id)
    assert got is not None and got.created_at == now and got.run_at == now + 0.1234567891
    assert got.timeout == 12.345678901
    claimed = store.claim(["default"], "w", 0.3333333333333333, 1, now + 1.0000000001)[0]
    assert claimed.started_at == now + 1.0000000001
    assert claimed.lease_until == (now + 1.0000000001) + 0.3333333333333333
    assert store.get(job.id) == claimed


def test_non_ascii_text_round_trips(store: RedisStore) -> None:
    job = make_job(title="Prévisions — 東京 🚀", payload='[["ü",{"k":"🚀"}],{}]', unique_key="clé-✓",
                   meta={"note": "naïve"})
    store.enqueue(job, time.time())
    got = store.get(job.id)
    assert got is not None and (got.title, got.payload, got.unique_key, got.meta) == (
        job.title, job.payload, job.unique_key, job.meta)
    assert store.enqueue(make_job(unique_key="clé-✓"), time.time()).duplicate
    claimed = store.claim(["default"], "wörker", LEASE, 1, time.time())[0]
    assert claimed.worker == "wörker" and claimed.args == ["ü", {"k": "🚀"}]


def test_released_jobs_go_back_to_the_head_in_their_order(store: RedisStore) -> None:
    jobs = [make_job() for _ in range(5)]
    store.enqueue_many(jobs, time.time())
    first = store.claim(["default"], "w", LEASE, 3, time.time())
    assert store.settle([Outcome(j.id, j.lease_token or "", "release") for j in first], time.time()) == [True] * 3
    assert [j.id for j in store.claim(["default"], "w", LEASE, 5, time.time())] == [j.id for j in jobs]


def test_bytes_that_are_not_utf8_round_trip(store: RedisStore, server: Any, url: str) -> None:
    """A foreign or corrupted record: its bytes come back as surrogates, which are written back as the same bytes."""
    job = make_job()
    store.enqueue(job, time.time())
    raw = redis.Redis.from_url(url.split("?")[0])
    try:
        raw.hset(f"{store.base}j:{job.id}", "payload", b'[["\xff\xfe caf\xc3\xa9"],{}]')
        got = store.get(job.id)
        assert got is not None and got.payload == '[["\udcff\udcfe café"],{}]'
        again = store.enqueue(make_job(payload=got.payload), time.time())
        assert raw.hget(f"{store.base}j:{again.id}", "payload") == b'[["\xff\xfe caf\xc3\xa9"],{}]'
    finally:
        raw.close()


def test_large_values_round_trip(store: RedisStore) -> None:
    payload = '[["' + "é" * 3_000_000 + '"],{}]'
    jobs = [make_job(payload=payload), *(make_job() for _ in range(2000))]
    store.enqueue_many(jobs, time.time())
    got = store.get(jobs[0].id)
    assert got is not None and got.payload == payload
    assert len(store.list(limit=10_000)) == 2001


def test_a_pooled_connection_the_server_closed_is_reopened_before_use(store: RedisStore, server: Any) -> None:
    store.enqueue(make_job(), time.time())
    client_id = store._call("CLIENT", "ID")
    assert server.client_kill_filter(_id=client_id) == 1
    deadline = time.monotonic() + 5
    while not store._link.stale(store._link._idle[""][0]) and time.monotonic() < deadline:  # the kill is asynchronous
        time.sleep(0.01)
    assert store.count() == 1
    assert store._call("CLIENT", "ID") != client_id


def test_a_healthy_pooled_connection_is_kept(store: RedisStore) -> None:
    store.count()
    (conn,) = store._link._idle[""]
    sock = conn._sock
    for _ in range(20):
        store.count()
    assert store._link._idle[""] == [conn] and conn._sock is sock


def test_the_session_starts_with_the_user_password_and_database(
    private_server: tuple[int, Callable[..., subprocess.Popen[bytes]]],
) -> None:
    port, start = private_server
    start()
    admin = redis.Redis(port=port, password=SECRET, decode_responses=True)
    try:
        admin.acl_setuser("worker", enabled=True, passwords=["+wörker-pw"], keys=["*"], commands=["+@all"])
        store = open_store(f"redis://worker:w%C3%B6rker-pw@127.0.0.1:{port}/5?prefix=acl", "site")
        try:
            store.enqueue(make_job(), time.time())
            assert store.count() == 1
            admin.select(5)
            assert admin.get("acl:schema") == "1"
            assert admin.execute_command("CLIENT", "LIST", "TYPE", "normal").count("user=worker") == 1
        finally:
            store.close()
    finally:
        admin.close()
    with pytest.raises(StoreUnavailable, match="invalid username-password pair") as info:
        open_store(f"redis://worker:not-{SECRET}@127.0.0.1:{port}/0?prefix=acl", "site")
    assert SECRET not in str(info.value)
    with pytest.raises(StoreUnavailable, match="Authentication required"):
        open_store(f"redis://127.0.0.1:{port}/0?prefix=acl", "site")
    with pytest.raises(StoreError, match="DB index is out of range"):
        open_store(f"redis://:{SECRET}@127.0.0.1:{port}/99?prefix=acl", "site")


# -- outages --------------------------------------------------------------------------------------------
@pytest.fixture
def private_server() -> Iterator[tuple[int, Callable[..., subprocess.Popen[bytes]]]]:
    """A redis-server of our own, which this test may stop and start again."""
    binary = shutil.which("redis-server")
    if binary is None:
        service_missing("redis-server binary", "not installed")
        raise AssertionError("unreachable")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    procs: list[subprocess.Popen[bytes]] = []

    def start(*options: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--requirepass", SECRET, *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        client = redis.Redis(port=port, password=SECRET)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()
        return proc

    yield port, start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


@contextmanager
def private_store(
    private_server: tuple[int, Callable[..., subprocess.Popen[bytes]]], prefix: str, *server_args: str
) -> Iterator[tuple[RedisStore, redis.Redis]]:
    """A store on the private server (started with ``server_args``), and a plain client of that server."""
    port, start = private_server
    start(*server_args)
    store = cast(RedisStore, open_store(f"redis://:{SECRET}@127.0.0.1:{port}/0?prefix={prefix}", "site"))
    client = redis.Redis(port=port, password=SECRET)
    try:
        yield store, client
    finally:
        client.close()
        store.close()


def test_an_outage_is_reported_and_the_next_call_after_it_works(
    private_server: tuple[int, Callable[..., subprocess.Popen[bytes]]], lua_mode: str
) -> None:
    port, start = private_server
    server = start()
    store = open_store(f"redis://:{SECRET}@127.0.0.1:{port}/0?prefix=outage", "site")
    store.enqueue(make_job(), time.time())
    assert store.count() == 1

    server.terminate()
    server.wait(10)
    for call in (store.count, lambda: store.claim(["default"], "w", LEASE, 1, time.time()),
                 lambda: store.wait_for_work(["default"], 0.2)):
        with pytest.raises(StoreUnavailable) as info:
            call()
        assert SECRET not in str(info.value) and f"redis://:***@127.0.0.1:{port}/0" in str(info.value)

    start()  # the same address, empty (no persistence), its script cache empty too
    assert store.count() == 0
    job = make_job()
    store.enqueue(job, time.time())
    assert [j.id for j in store.claim(["default"], "w", LEASE, 1, time.time())] == [job.id]
    store.close()


# -- TLS ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA, a server certificate for localhost and 127.0.0.1, and a client certificate, all signed by the CA."""
    if shutil.which("openssl") is None:
        service_missing("openssl", "not installed (needed to make test certificates)")
    folder = tmp_path_factory.mktemp("tls")
    files = {name: str(folder / name) for name in ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem",
                                                   "client.key", "san.ext")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", *ec, "-keyout", files["ca.key"], "-out", files["ca.pem"], "-days", "2",
            "-subj", "/CN=offload test CA")
    with open(files["san.ext"], "w") as ext:
        ext.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for who in ("server", "client"):
        csr = str(folder / f"{who}.csr")
        openssl("req", *ec, "-keyout", files[f"{who}.key"], "-out", csr, "-subj", f"/CN={who}")
        openssl("x509", "-req", "-in", csr, "-CA", files["ca.pem"], "-CAkey", files["ca.key"], "-CAcreateserial",
                "-out", files[f"{who}.pem"], "-days", "2", "-extfile", files["san.ext"])
    return files


@pytest.fixture
def tls_server(tls_files: dict[str, str]) -> Iterator[int]:
    """A redis-server of our own that speaks only TLS and wants a client certificate; its port."""
    binary = shutil.which("redis-server")
    if binary is None:
        service_missing("redis-server binary", "not installed")
        raise AssertionError("unreachable")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--requirepass", SECRET, "--tls-cert-file", tls_files["server.pem"], "--tls-key-file",
         tls_files["server.key"], "--tls-ca-cert-file", tls_files["ca.pem"], "--tls-auth-clients", "yes"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    service_missing("redis-server with TLS", "it did not start (built without TLS?)")
                time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def tls_url(port: int, files: dict[str, str], host: str = "localhost", **options: str) -> str:
    query = {"ssl_ca_certs": files["ca.pem"], "ssl_certfile": files["client.pem"], "ssl_keyfile": files["client.key"],
             "prefix": "tls", **options}
    return f"rediss://:{SECRET}@{host}:{port}/3?" + "&".join(f"{k}={v}" for k, v in query.items() if v)


def test_a_store_over_tls(tls_server: int, tls_files: dict[str, str], lua_mode: str) -> None:
    store = open_store(tls_url(tls_server, tls_files), "site")
    assert isinstance(store, RedisStore)
    try:
        job = store.enqueue(make_job(payload='[["' + "x" * 200_000 + '"],{}]'), time.time())
        assert [j.id for j in store.claim(["default"], "w", LEASE, 1, time.time())] == [job.id]
        assert not store.wait_for_work(["default"], 0.2)
        (conn,) = store._link._idle[""]
        sock = conn._sock
        for _ in range(10):  # a session ticket the server sent is not taken for a closed connection
            assert store.count() == 1
        assert store._link._idle[""] == [conn] and conn._sock is sock

        client_id = store._call("CLIENT", "ID")
        store._call("CLIENT", "KILL", "ID", str(client_id), "SKIPME", "no")  # as the server closing it
        deadline = time.monotonic() + 5
        while not store._link.stale(conn) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.count() == 1 and store._call("CLIENT", "ID") != client_id

        assert_close_ends_a_wait(store, "elsewhere")
    finally:
        store.close()


def test_tls_checks_the_server_unless_told_not_to(tls_server: int, tls_files: dict[str, str]) -> None:
    with pytest.raises(StoreUnavailable, match="certificate verify failed") as info:
        open_store(tls_url(tls_server, tls_files, ssl_ca_certs=""), "site")
    assert SECRET not in str(info.value) and "\n" not in str(info.value)
    store = open_store(tls_url(tls_server, tls_files, ssl_ca_certs="", ssl_cert_reqs="none"), "site")
    store.close()
    store = open_store(tls_url(tls_server, tls_files, host="127.0.0.1"), "site")  # the certificate names the IP too
    store.close()


def test_tls_without_the_client_certificate_the_server_wants(tls_server: int, tls_files: dict[str, str]) -> None:
    with pytest.raises(StoreUnavailable) as info:
        open_store(tls_url(tls_server, tls_files, ssl_certfile="", ssl_keyfile=""), "site")
    assert SECRET not in str(info.value)


def test_tls_to_a_server_that_does_not_speak_it(url: str) -> None:
    plain = urlsplit(url)
    with pytest.raises(StoreUnavailable) as info:
        open_store(f"rediss://:{SECRET}@{plain.hostname}:{plain.port or 6379}/0?ssl_cert_reqs=none&connect_timeout=0.5",
                   "site")
    assert SECRET not in str(info.value)


# -- how the Lua runs, and what enqueue sends -------------------------------------------------------------
def test_the_lua_runs_as_functions_on_redis_7_else_as_scripts(store: RedisStore, lua_mode: str) -> None:
    store.enqueue(make_job(), time.time())
    assert store._functions == (lua_mode == "functions")
    if store._functions:
        (library,) = store._call("FUNCTION", "LIST", "LIBRARYNAME", store._lua.library_name)
        assert library[:2] == ["library_name", store._lua.library_name]


def test_lost_lua_is_loaded_again(
    private_server: tuple[int, Callable[..., subprocess.Popen[bytes]]], lua_mode: str
) -> None:
    with private_store(private_server, "lost") as (store, client):
        client.function_flush()
        client.script_flush()
        job = make_job()
        assert not store.enqueue(job, time.time()).duplicate
        assert [j.id for j in store.claim(["default"], "w", LEASE, 1, time.time())] == [job.id]


def test_opening_drops_the_libraries_of_other_offload_versions(
    private_server: tuple[int, Callable[..., subprocess.Popen[bytes]]],
) -> None:
    port, start = private_server
    start()
    url = f"redis://:{SECRET}@127.0.0.1:{port}/0?prefix=versions"
    client = redis.Redis(port=port, password=SECRET, decode_responses=True)
    first = open_store(url, "site")
    try:
        assert isinstance(first, RedisStore) and first._functions
        other = "#!lua name={}\nredis.register_function('{}_enqueue', function(keys, args) return 1 end)"
        for name in ("offload_0123456789abcdef", "offload_mine", "reports"):
            client.function_load(other.format(name, name))
        client.function_delete(first._lua.library_name)  # as if another version had dropped ours
        second = open_store(url, "site")
        second.close()
        names = {library[1] for library in first._call("FUNCTION", "LIST")}
        assert names == {first._lua.library_name, "offload_mine", "reports"}
        first.enqueue(make_job(), time.time())  # a process whose library was dropped loads it again
    finally:
        client.close()
        first.close()


def test_a_server_without_functions_gets_the_scripts(
    private_server: tuple[int, Callable[..., subprocess.Popen[bytes]]],
) -> None:
    port, start = private_server
    start("--rename-command", "FUNCTION", "", "--rename-command", "FCALL", "")  # as Redis 6.2 answers
    store = open_store(f"redis://:{SECRET}@127.0.0.1:{port}/0?prefix=old", "site")
    try:
        assert isinstance(store, RedisStore) and not store._functions
        jobs = [make_job(), make_job(run_at=time.time() + 60)]
        store.enqueue_many(jobs, time.time())
        assert store.enqueue(make_job(id=jobs[0].id), time.time()).duplicate
        assert [j.id for j in store.claim(["default"], "w", LEASE, 5, time.time())] == [jobs[0].id]
        assert store.counts() == {"default": {STARTED: 1, SCHEDULED: 1}}
    finally:
        store.close()


def test_a_full_server_refuses_new_jobs_but_lets_workers_and_purge_drain_it(
    private_server: tuple[int, Callable[..., subprocess.Popen[bytes]]], lua_mode: str
) -> None:
    with private_store(private_server, "full", "--maxmemory-policy", "noeviction") as (store, client):
        now = time.time()
        store.enqueue_many([make_job(payload=f'[["{"x" * 2000}"],{{}}]') for _ in range(20)], now)
        client.config_set("maxmemory", str(int(client.info("memory")["used_memory"]) - 1))
        with pytest.raises(StoreError, match="maxmemory"):
            store.enqueue(make_job(), now)
        assert store.get(store.list(limit=1)[0].id) is not None
        claimed = store.claim(["default"], "w", LEASE, 2, now)
        assert len(claimed) == 2
        outcomes = [Outcome(j.id, j.lease_token or "", "finish", ended_at=now) for j in claimed]
        assert store.settle(outcomes, now) == [True, True]
        assert store.purge(now + 1) == 2 and store.clear() == 18
        client.config_set("maxmemory", "0")
        assert not store.enqueue(make_job(), now).duplicate


def test_indexes_are_skiplists_from_their_first_job(store: RedisStore, server: Any) -> None:
    """A small ZSET kept as a listpack costs each insert a parse of every score before it."""
    now = time.time()
    store.enqueue(make_job("a"), now)
    store.enqueue_many([make_job("b"), make_job("b", now=now, run_at=now + 60)], now)
    job = store.claim(["a"], "w", LEASE, 1, now)[0]
    store.settle([Outcome(job.id, job.lease_token or "", "finish", ended_at=now)], now)
    store.enqueue(make_job("a"), now)
    indexes = [f"{store.base}s:{store.qname(q)}:{state}" for q, state in
               (("a", QUEUED), ("a", FINISHED), ("b", QUEUED), ("b", SCHEDULED))] + [store.base + "sched"]
    for key in indexes:
        assert server.object("encoding", key) == "skiplist", key
        assert all("~" not in member for member in server.zrange(key, 0, -1)), key
    check_books(store, server, thorough=True)


def hash_without_ids(server: Any, store: RedisStore, job_id: str) -> dict[str, str]:
    fields: dict[str, str] = server.hgetall(f"{store.base}j:{job_id}")
    assert fields["seq"].isdigit() and len(fields["seq"]) == 15
    return {k: v for k, v in fields.items() if k != "seq"}


@pytest.mark.parametrize("meta", [{}, {"title": None}, {"team": "ops"}])
def test_one_queued_job_is_stored_as_a_batch_stores_it(store: RedisStore, server: Any, meta: dict[str, Any]) -> None:
    """A single queued job takes a shorter path in the script; it must write the very hash the batch path does,
    the layout every other script reads."""
    now = 1_800_000_000.25
    alone, in_batch, other = (make_job(id=f"job-{n}", now=now, meta=meta) for n in range(3))
    store.enqueue(alone, now)
    store.enqueue_many([in_batch, other], now)
    expected = {"spec", "payload", "queue", "state", "created_at", "attempts", "max_attempts", "enqueued_at"}
    assert set(hash_without_ids(server, store, alone.id)) == expected | ({"meta"} if meta else set())
    assert hash_without_ids(server, store, alone.id) == hash_without_ids(server, store, in_batch.id)
    assert store.get(alone.id) == mark_stored(alone, now)
    check_books(store, server, thorough=True)


def test_a_batch_of_every_kind_of_job_stores_each_as_given(store: RedisStore, server: Any) -> None:
    now = 1_800_000_000.5
    jobs = [
        make_job("a", now=now),
        make_job("b", now=now + 1e-6, meta={"team": "ops"}, title="Prévisions, 0,x"),
        make_job("a", now=now, run_at=now + 30, unique_key="u1"),
        make_job("a", now=now, run_at=now - 5, attempts=2, max_attempts=5, retry={"backoff": [1, 2]}),
        make_job("c", now=now, unique_key="u2", timeout=None, task="reports.build", func=None),
        make_job("a", now=now, enqueued_at=now - 100, run_at=now + 60),
        make_job("b", now=now, meta={"team": "ops"}),
    ]
    jobs.append(make_job("a", now=now, id=jobs[1].id))  # the same id again in the batch
    jobs.append(make_job("c", now=now, unique_key="u2"))  # and the same unique key
    out = store.enqueue_many(jobs, now)
    assert [j.duplicate for j in out] == [False] * 7 + [True, True]
    assert out[7] == store.get(jobs[1].id) and out[8] == store.get(jobs[4].id)
    for job, stored in zip(jobs[:7], out, strict=False):
        assert store.get(job.id) == stored == mark_stored(job, now)
    check_books(store, server, thorough=True)


def test_specs_keep_the_json_types_of_jobs_otherwise_alike(store: RedisStore) -> None:
    now = time.time()
    jobs = [make_job(now=now, timeout=180), make_job(now=now, timeout=180.0), make_job(now=now, timeout=None),
            make_job(now=now, max_attempts=1), make_job(now=now, max_attempts=True)]
    store.enqueue_many(jobs, now)
    store.enqueue_many(list(reversed([make_job(now=now, id=j.id + "-2", timeout=j.timeout,
                                              max_attempts=j.max_attempts) for j in jobs])), now)
    for job in jobs:
        for job_id in (job.id, job.id + "-2"):
            got = store.get(job_id)
            assert got is not None
            assert (type(got.timeout), type(got.max_attempts)) == (type(job.timeout), type(job.max_attempts))


def test_commands_are_packed_with_byte_lengths() -> None:
    def reference(commands: list[tuple[str, ...]]) -> bytes:
        out = b""
        for args in commands:
            out += f"*{len(args)}\r\n".encode()
            for arg in args:
                data = arg.encode("utf-8", "surrogateescape")
                out += f"${len(data)}\r\n".encode() + data + b"\r\n"
        return out

    rng = random.Random(7)
    pieces = ["a", "é", "東", "🚀", "\udcff", "\r\n", "$", ""]
    for _ in range(500):
        commands = [
            tuple("".join(rng.choice(pieces) for _ in range(rng.choice([0, 1, 7, 1023, 1024, 3000])))
                  for _ in range(rng.randint(1, 5)))
            for _ in range(rng.randint(1, 3))
        ]
        assert _pack(commands) == reference(commands)


def test_reaping_a_dead_worker_runs_as_functions_and_as_scripts(make: Callable[..., RedisStore]) -> None:
    """reap.lua under both ways of running the Lua: its common.lua helpers (move, apply, row...) are there."""
    store = make()
    now = time.time()
    store.register_worker(WorkerInfo("dead", "host", 1, ["a"], 1, now - 60, now - 60))
    store.enqueue_many([make_job("a"), make_job("a", max_attempts=1)], now)
    jobs = store.claim(["a"], "dead", 30.0, 2, now)
    changed = store.reap_dead_workers("me", now, now - 10)
    assert sorted((j.id, j.state) for j in changed) == sorted([(jobs[0].id, QUEUED), (jobs[1].id, FAILED)])
    assert all(j.error["type"] == "WorkerLost" for j in changed)
    assert store.counts() == {"a": {QUEUED: 1, FAILED: 1}}
    assert store.list_workers(0.0) == []
