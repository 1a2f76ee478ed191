"""The Redis layout of priorities and paused queues (issue 22): jobs written before priorities existed are read
and claimed as priority 0, in their order, with no migration; a priority 0 job is still stored as before."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from offload.stores import open_store  # noqa: E402
from offload.stores.redis import RedisStore  # noqa: E402
from tests.conftest import engine_url  # noqa: E402
from tests.stores.conftest import make_job  # noqa: E402


@pytest.fixture
def store(tmp_path: Any) -> Any:
    s = open_store(engine_url("redis", tmp_path), f"t{uuid.uuid4().hex[:12]}")
    assert isinstance(s, RedisStore)
    yield s
    s.close()


def client(store: RedisStore) -> Any:
    return redis.Redis.from_url(store.url.split("?")[0], decode_responses=True)


def write_as_schema_1(r: Any, store: RedisStore, queue: str, job_id: str, at: float, seq: int) -> None:
    """One queued job, keys and fields exactly as offload wrote them before priorities (its ``add_queued``)."""
    base, q = store.base, store.qname(queue)
    spec = json.dumps([queue, "tests.jobfuncs:noop", None, None, at, 3, None, 180.0, None])
    number = f"{seq:015d}"
    r.hset(base + "j:" + job_id, mapping={"spec": spec, "payload": "[[],{}]", "created_at": repr(at), "seq": number,
                                          "queue": q, "state": "queued", "attempts": "0", "max_attempts": "3",
                                          "enqueued_at": repr(at)})
    r.hincrby(base + "counts", q + "|queued", 1)
    r.zadd(base + f"s:{q}:queued", {f"{number}:{job_id}": at})
    r.rpush(base + "q:" + q, job_id)
    r.rpush(base + "w:" + q, "1")
    r.set(base + "seq", seq)


def test_jobs_written_before_priorities_are_claimed_as_priority_0_in_order(store: RedisStore) -> None:
    r = client(store)
    now = time.time() - 60
    old = [uuid.uuid4().hex for _ in range(3)]
    for i, job_id in enumerate(old):
        write_as_schema_1(r, store, "default", job_id, now + i, i + 1)
    assert [store.get(j).priority for j in old] == [0, 0, 0]
    assert store.wait_for_work(["default"], 0.0) is True
    low, urgent = make_job(priority=5), make_job(priority=0)
    store.enqueue_many([low, urgent], time.time())
    assert store.counts() == {"default": {"queued": 5}}
    assert store.to_front(old[2]) is True
    claimed = store.claim(["default"], "w", 30.0, 10, time.time())
    assert [j.id for j in claimed] == [old[2], old[0], old[1], urgent.id, low.id]
    r.close()


def test_a_priority_0_job_is_stored_as_before_and_others_in_their_own_list(store: RedisStore) -> None:
    r = client(store)
    plain, low = make_job(), make_job(priority=7)
    store.enqueue(plain, time.time())
    store.enqueue(low, time.time())
    q = store.base + "q:" + store.qname("default")
    assert r.lrange(q, 0, -1) == [plain.id] and r.lrange(q + "#7", 0, -1) == [low.id]
    assert not r.hexists(store.base + "j:" + plain.id, "priority")
    assert r.hget(store.base + "j:" + low.id, "priority") == "7"
    assert store.cancel(low.id, time.time()) is not None and not r.exists(q + "#7")
    store.pause("default", 1.5)
    assert r.hgetall(store.base + "paused") == {store.qname("default"): "1.5"}
    assert not r.exists(store.base + "w:" + store.qname("default"))  # a paused queue keeps no wake token
    store.resume("default")
    assert r.lrange(store.base + "w:" + store.qname("default"), 0, -1) == ["1"]
    r.close()


def test_priorities_pause_and_snooze_as_evalsha_scripts(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same Lua run as EVALSHA scripts (Redis 6.2, or FUNCTION LOAD refused): each script carries the
    common.lua helpers it uses, so a helper the flow-control code added must be found by the prelude."""
    from offload.jobs import Outcome

    monkeypatch.setattr(RedisStore, "use_functions", False)
    s = open_store(engine_url("redis", tmp_path), f"t{uuid.uuid4().hex[:12]}")
    try:
        now = time.time()
        low, high = make_job(priority=9), make_job(priority=1)
        s.enqueue_many([low, high], now)
        assert s.pause("default", now) and s.claim(["default"], "w", 30.0, 5, now) == []
        assert s.resume("default") and s.wait_for_work(["default"], 0.0)
        first = s.claim(["default"], "w", 30.0, 1, now)[0]
        assert first.id == high.id
        assert s.settle([Outcome(first.id, first.lease_token or "", "snooze", retry_at=now + 5)], now) == [True]
        assert s.to_front(low.id) and s.get(low.id).priority == 0
        assert [j.id for j in s.claim(["default"], "w", 30.0, 5, now + 6)] == [low.id, high.id]
        assert s.cancel(high.id, now) is not None and s.clear(["default"]) == 0
    finally:
        s.close()
