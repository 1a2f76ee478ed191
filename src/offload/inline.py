"""Synchronous mode (``offload.jobs.sync``, the ``offload_sync`` fixture): a job runs at enqueue, in the caller's
process, through the same JSON encoding a worker would see; its exception reaches the caller. An ``async def`` job
is awaited. A ``Retry`` (Celery's ``task.retry``) runs the job again at once, as Celery's eager mode does (no
waiting for the countdown), with the arguments it asked for, while its budget allows. The job is never stored; a
task status tied to it records how it ended.
"""

from __future__ import annotations

import inspect
import time
import traceback
from typing import TYPE_CHECKING, Any

from offload import codec, context, funcs, taskstatus
from offload.jobs import FAILED, FINISHED, STARTED, Job
from offload.retry import Retry, next_payload, recorded_budget

if TYPE_CHECKING:
    from offload.stores import Store


def run_inline(store: Store | None, job: Job, key: taskstatus.TaskKey | None = None) -> Job:
    """Run ``job`` here and now; returns it finished, or raises what it raised (after recording the failure in
    ``key``'s task status on ``store``)."""
    job.started_at = time.time()
    job.state = STARTED
    try:
        fn = funcs.job_function(job.func, job.task)
        while True:
            job.attempts += 1
            args, kwargs = codec.decode_payload(job.payload)
            token = context.enter(job.spec(), None)
            try:
                result = fn(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = _wait_for(result)
                break
            except Retry as exc:
                _prepare_retry(job, exc)
            finally:
                context.leave(token)
        job.result_json = codec.encode_result(result)
    except BaseException as exc:
        job.state = FAILED
        job.ended_at = time.time()
        job.error = _error(exc)
        job.errors.append(job.error)
        if store is not None and key is not None:
            taskstatus.attach(store, key, job)
        raise
    job.state = FINISHED
    job.ended_at = time.time()
    if store is not None and key is not None:
        taskstatus.attach(store, key, job)
    return job


def _prepare_retry(job: Job, exc: Retry) -> None:
    """A ``Retry``: prepare the next attempt, or raise what the job fails with."""
    fields = exc.report_fields()
    budget = recorded_budget(job.attempts, job.max_attempts, exc.max_retries)
    if budget is not None:
        job.max_attempts = budget
    cause = exc.exc if exc.exc is not None else exc
    if job.attempts >= job.max_attempts or getattr(cause, "retryable", True) is False:
        raise cause
    error = _error(cause)
    error.update(reason="retry", attempt=job.attempts, at=time.time())
    job.errors.append(error)
    job.error = error
    job.payload = next_payload(job.payload, fields.get("retry_with")) or job.payload


def _wait_for(awaitable: Any) -> Any:
    """The result of an awaitable, from synchronous code: on a new event loop, or, when this thread already runs
    one (an async application calling enqueue in synchronous mode), on a new loop in another thread that this
    one waits for (with this context: the job still sees ``current_job()``)."""
    import asyncio

    async def wait() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    copied = contextvars.copy_context()
    with ThreadPoolExecutor(1, thread_name_prefix="offload-sync") as pool:
        return pool.submit(copied.run, asyncio.run, wait()).result()


def _error(exc: BaseException) -> dict[str, Any]:
    cls = type(exc)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    return {"type": name, "message": str(exc), "reason": "exception",
            "traceback": "".join(traceback.format_exception(cls, exc, exc.__traceback__))}
