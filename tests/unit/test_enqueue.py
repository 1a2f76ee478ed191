"""What enqueue accepts and refuses; a refused job writes nothing."""

from __future__ import annotations

import datetime as dt
import functools
import os

import pytest

import offload
from offload import Offload
from offload.errors import InvalidQueueName, JobFunctionError, SerializationError, StoreURLError
from offload.jobs import QUEUED, SCHEDULED
from tests import jobfuncs


@pytest.fixture
def app() -> Offload:
    return Offload(store="memory://", site_id="unit")


class Thing:
    def method(self) -> None:
        pass

    @staticmethod
    def static(x: int) -> int:
        return x

    @classmethod
    def klass(cls, x: int) -> int:
        return x


def nested_factory():  # type: ignore[no-untyped-def]
    def inner() -> None:
        pass

    return inner


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda: None, "lambdas cannot be job functions"),
        (nested_factory(), "defined inside another function"),
        (Thing().method, "bound method"),
        (functools.partial(jobfuncs.add, 1), "partial"),
        (42, "not a function"),
        ("not a path!", "not an import path"),
    ],
)
def test_refused_callables_say_why_and_write_nothing(app: Offload, fn: object, message: str) -> None:
    with pytest.raises(JobFunctionError, match=message):
        app.enqueue(fn)  # type: ignore[arg-type]
    assert app.store.count() == 0


def test_main_module_functions_are_refused(app: Offload) -> None:
    def in_main() -> None:
        pass

    in_main.__module__ = "__main__"
    in_main.__qualname__ = "in_main"
    with pytest.raises(JobFunctionError, match="__main__"):
        app.enqueue(in_main)


def test_accepted_callables(app: Offload) -> None:
    assert app.enqueue(jobfuncs.add, [1, 2]).func == "tests.jobfuncs:add"
    assert app.enqueue(os.remove, ["/tmp/x"]).func.endswith(":remove")
    assert app.enqueue(Thing.static, [1]).func == "tests.unit.test_enqueue:Thing.static"
    assert app.enqueue(Thing.klass, [1]).func == "tests.unit.test_enqueue:Thing.klass"
    assert app.enqueue("tests.jobfuncs:add").func == "tests.jobfuncs:add"
    assert app.enqueue("tests.jobfuncs.add").func == "tests.jobfuncs:add"


def test_bad_arguments_are_named_and_nothing_is_written(app: Offload) -> None:
    with pytest.raises(SerializationError, match=r"kwargs\['handle'\]"):
        app.enqueue(jobfuncs.echo, [1], {"handle": object()})
    with pytest.raises(InvalidQueueName):
        app.enqueue(jobfuncs.noop, queue="bad queue!")
    with pytest.raises(ValueError, match="timeout"):
        app.enqueue(jobfuncs.noop, timeout=0)
    with pytest.raises(ValueError, match="timeout"):
        app.enqueue(jobfuncs.noop, timeout=10**12)
    with pytest.raises(ValueError, match="timeout"):
        app.enqueue(jobfuncs.noop, timeout="soon")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unknown enqueue option"):
        app.enqueue(jobfuncs.noop, depends_on="x")
    with pytest.raises(ValueError, match="rq_kwargs"):
        app.enqueue(jobfuncs.noop, rq_kwargs={"depends_on": "x"})
    assert app.store.count() == 0


def test_positional_args_timeouts_and_ckan_spelling(app: Offload) -> None:
    job = app.enqueue(jobfuncs.add, [1, 2])
    assert job.args == [1, 2] and job.kwargs == {} and job.timeout == 180 and job.state == QUEUED
    assert app.enqueue(jobfuncs.add, timeout=-1).timeout is None
    assert app.enqueue(jobfuncs.add, timeout=offload.NO_TIMEOUT).timeout is None
    assert app.enqueue(jobfuncs.add, rq_kwargs={"timeout": 3600}).timeout == 3600
    assert app.enqueue(jobfuncs.add, title="T").meta["title"] == "T"
    assert app.enqueue(jobfuncs.add).meta == {"title": None}
    configured = Offload(store="memory://", jobs__timeout=-1)
    assert configured.enqueue(jobfuncs.add).timeout is None


def test_scheduling_with_at_and_delay(app: Offload) -> None:
    later = app.enqueue(jobfuncs.noop, delay=60)
    assert later.state == SCHEDULED and later.run_at > later.created_at + 59
    naive = dt.datetime(2999, 1, 1, 12, 0)
    at = app.enqueue(jobfuncs.noop, at=naive)
    assert at.run_at == dt.datetime(2999, 1, 1, 12, 0, tzinfo=dt.timezone.utc).timestamp()
    aware = dt.datetime(2999, 1, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert app.enqueue(jobfuncs.noop, at=aware).run_at == at.run_at - 3600
    with pytest.raises(ValueError, match="either at= or delay="):
        app.enqueue(jobfuncs.noop, at=naive, delay=5)


def test_unique_keys_and_job_ids(app: Offload) -> None:
    first = app.enqueue(jobfuncs.noop, unique_key="k")
    dup = app.enqueue(jobfuncs.noop, unique_key="k")
    assert dup.duplicate and dup.id == first.id
    own = app.enqueue(jobfuncs.noop, job_id="my-job-1")
    assert own.id == "my-job-1" and app.enqueue(jobfuncs.noop, job_id="my-job-1").duplicate
    with pytest.raises(ValueError, match="invalid job id"):
        app.enqueue(jobfuncs.noop, job_id="bad id")


def test_unknown_store_scheme_is_refused_at_construction() -> None:
    with pytest.raises(StoreURLError, match="unknown store URL scheme 'mysql'"):
        Offload(store="mysql://localhost/db")
    with pytest.raises(StoreURLError, match="invalid store URL"):
        Offload(store="offload.db")


def test_management_verbs(app: Offload) -> None:
    job = app.enqueue(jobfuncs.noop, queue="q1")
    assert app.get_queue("q1").job_ids == [job.id]
    assert app.cancel(job.id).state == "canceled"
    with pytest.raises(offload.InvalidJobState, match="already canceled"):
        app.cancel(job.id)
    with pytest.raises(offload.InvalidJobState, match="only failed, canceled or scheduled"):
        app.retry(app.enqueue(jobfuncs.noop).id)
    assert app.retry(job.id).state == QUEUED
    with pytest.raises(offload.JobNotFound, match='There is no job with ID "nope"'):
        app.get_job("nope")
    app.enqueue(jobfuncs.noop, queue="q2")
    assert app.queues() == ["default", "q1", "q2"]
    assert app.clear(["q1"]) == 1 and app.get_queue("q2").empty() == 1


def test_clear_acts_only_on_the_queues_it_is_given(app: Offload) -> None:
    """An empty list names no queue: it clears nothing (only None means every queue); a bare string is refused
    rather than read as a list of one-letter queues."""
    kept = [app.enqueue(jobfuncs.noop, queue=q).id for q in ("a", "b")]
    assert app.clear([]) == 0
    with pytest.raises(ValueError, match="not the string 'a'"):
        app.clear("a")  # type: ignore[arg-type]
    assert [app.get_job(job_id).state for job_id in kept] == [QUEUED, QUEUED]
    assert app.clear() == 2


def test_public_api_is_complete() -> None:
    for name in offload.__all__:
        assert hasattr(offload, name), name
    ours = {
        name for name in dir(offload)
        if not name.startswith("_") and getattr(getattr(offload, name), "__module__", "").startswith("offload")
    }
    assert ours <= set(offload.__all__), ours - set(offload.__all__)


def test_enqueue_many_gives_every_call_its_own_job(app: Offload) -> None:
    jobs = app.enqueue_many([(jobfuncs.add, [i, i]) for i in range(5)] + [jobfuncs.noop, (jobfuncs.echo,)],
                            queue="bulk", title="T", max_retries=2, retry={"delay": 5}, timeout=30)
    assert len({job.id for job in jobs}) == 7
    assert [job.args for job in jobs[:5]] == [[i, i] for i in range(5)]
    assert [job.func for job in jobs[4:]] == ["tests.jobfuncs:add", "tests.jobfuncs:noop", "tests.jobfuncs:echo"]
    assert all(job.queue == "bulk" and job.title == "T" and job.max_attempts == 3 and job.timeout == 30
               and job.retry == jobs[0].retry is not None for job in jobs)
    created = [job.created_at for job in jobs]
    assert created == sorted(created) and len(set(created)) == 7
    # What a caller may change on one returned job is its own.
    jobs[1].meta["seen"] = True
    jobs[1].errors.append({"x": 1})
    jobs[1].retry["delay"] = 99  # type: ignore[index]
    assert "seen" not in jobs[0].meta and "seen" not in jobs[2].meta
    assert jobs[0].errors == [] and jobs[2].errors == [] and jobs[2].retry["delay"] == 5  # type: ignore[index]
    stored = {job.id: job for job in app.store.list(queues=["bulk"], limit=10)}
    assert {i: stored[job.id].args for i, job in enumerate(jobs[:5])} == {i: [i, i] for i in range(5)}


def test_enqueue_many_schedules_each_call_against_its_own_time(app: Offload) -> None:
    jobs = app.enqueue_many([(jobfuncs.noop,), (jobfuncs.noop,)], delay=60)
    assert all(job.state == SCHEDULED and job.run_at > job.created_at + 59 for job in jobs)


def test_enqueue_many_refuses_bad_calls_naming_them_and_writes_nothing(app: Offload) -> None:
    with pytest.raises(ValueError, match="call 1 is a tuple of 4 items"):
        app.enqueue_many([(jobfuncs.add, [1, 2]), (jobfuncs.add, [1, 2], {}, "title")])
    with pytest.raises(ValueError, match="call 0 is a tuple of 0 items"):
        app.enqueue_many([()])
    with pytest.raises(ValueError, match="call 0 has no function"):
        app.enqueue_many([(None, [1])])
    with pytest.raises(ValueError, match="call 0 has no function"):
        app.enqueue_many([{"args": [1]}])
    with pytest.raises(SerializationError, match=r"args\[0\]"):
        app.enqueue_many([(jobfuncs.echo, [1]), (jobfuncs.echo, [object()])])
    with pytest.raises(JobFunctionError, match="bound method"):
        app.enqueue_many([(jobfuncs.echo, [1]), Thing().method])
    assert app.store.count() == 0


def test_enqueue_many_with_a_fixed_id_or_meta_builds_each_call(app: Offload) -> None:
    first, again = app.enqueue_many([(jobfuncs.noop,), (jobfuncs.noop,)], job_id="fixed")
    assert first.id == again.id == "fixed" and again.duplicate
    jobs = app.enqueue_many([(jobfuncs.add, [1, 1]), (jobfuncs.add, [2, 2])], meta={"batch": 7})
    assert [job.meta for job in jobs] == [{"batch": 7, "title": None}] * 2
    assert jobs[0].meta is not jobs[1].meta


def test_enqueue_many_options_give_arguments_to_the_calls_that_leave_them_out(app: Offload) -> None:
    bare, short, full = app.enqueue_many([jobfuncs.add, (jobfuncs.add,), (jobfuncs.add, [5, 5])], args=[1, 2])
    assert bare.args == short.args == [1, 2] and full.args == [5, 5]
    given, own = app.enqueue_many([(jobfuncs.echo, [1]), (jobfuncs.echo, [2], {"x": 3})], kwargs={"x": 0})
    assert (given.kwargs, own.kwargs) == ({"x": 0}, {"x": 3})
    first, second = app.enqueue_many([{"args": [1]}, (jobfuncs.noop,)], fn=jobfuncs.add)
    assert (first.func, second.func) == ("tests.jobfuncs:add", "tests.jobfuncs:noop")
