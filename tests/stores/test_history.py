"""Metrics history on every engine (it lives in the store's records): buckets sum what several workers wrote,
survive the writer (a restarted worker writes under a new id), and pruning keeps the history bounded."""

from __future__ import annotations

import math
import time

from offload import history
from offload.stores import Store


def _record_every(recorder: history.Recorder, start: float, end: float, step: float, ok: bool = True) -> int:
    n = 0
    t = start
    while t < end:
        recorder.record("mail", t, ok, runtime=0.2, wait=1.5)
        t += step
        n += 1
    return n


def test_buckets_sum_the_workers_and_survive_them(store: Store) -> None:
    now = time.time()
    minute = now // 60 * 60
    first = history.Recorder(store, "host.1.aaaa")
    for runtime in (0.003, 0.2, 0.2, 4.0):
        first.record("mail", minute + 1, True, runtime, wait=0.5)
    first.record("mail", minute + 2, False, 30.5, wait=12.0)
    first.flush(now)
    del first  # the worker stops; a new one (new id) counts on
    second = history.Recorder(store, "host.2.bbbb")
    second.record("mail", minute + 3, True, 0.2, wait=2.0)
    second.record("other", minute + 3, True, 0.2, wait=None)
    second.flush(now)
    second.record("mail", minute + 4, True, 0.2, wait=2.0)
    second.flush(now)  # the same record again, with its new total

    [(start, bucket)] = history.series(store, "mail", "minute", minute, minute)
    assert start == minute and (bucket.finished, bucket.failed) == (6, 1)
    assert bucket.waits == 7 and bucket.wait_max == 12.0 and math.isclose(bucket.wait_sum, 18.0)
    assert bucket.percentile(0.5) == 0.25 and bucket.percentile(0.99) == 60.0 and bucket.percentile(0.1) == 0.005
    hour = history.series(store, "mail", "hour", now, now)[0][1]
    assert (hour.finished, hour.failed) == (6, 1)
    empty = history.series(store, "mail", "minute", minute - 600, minute - 60)
    assert len(empty) == 10 and all(b.finished == b.failed == 0 and b.percentile(0.5) is None for _, b in empty)


def test_history_stays_bounded(store: Store) -> None:
    now = time.time()
    recorder = history.Recorder(store, "host.1.cccc")
    # Three days of traffic, a job every 20 minutes, written as it happens.
    start = now - 3 * 86400
    t = start
    while t < now:
        recorder.record("mail", t, True, 0.1, 0.1)
        if int(t) % 7200 < 1200:
            recorder.flush(t)
        t += 1200
    recorder.flush(now)
    before = sum(len(store.list_records(history.kind("mail", "minute", h)))
                 for h in range(int(start // 3600 * 3600), int(now) + 1, 3600))
    assert before == 3 * 72
    assert history.prune(store, ["mail"], now) > 0
    minutes = history.series(store, "mail", "minute", start, now)
    kept = [s for s, b in minutes if b.finished]
    assert kept and min(kept) >= now - 86400 - 60 and len(kept) in (72, 73)
    hours = [s for s, b in history.series(store, "mail", "hour", start, now) if b.finished]
    assert len(hours) >= 71, "hours are kept 30 days"
    assert history.prune(store, ["mail"], now) == 0, "nothing more to delete"
