"""Asynchronous background jobs for CKAN, on offload: the public surface of CKAN 2.12's ``ckan.lib.jobs``.

CKAN and its extensions call ``enqueue``, ``get_queue``, ``job_from_id`` ... and run ``Worker``; with the
``offload`` plugin enabled those names in ``ckan.lib.jobs`` (and ``toolkit.enqueue_job``,
``toolkit.get_job_queue``, ``toolkit.job_from_id``) are the ones below, so that code works unchanged while
jobs live in the store named by ``ckan.offload.store`` (default: ``ckan.redis.url``).

As in CKAN, functions take queue names without prefix (``"default"``); queue objects carry the prefixed
name (``"ckan:<site_id>:default"``); ``add_queue_name_prefix`` and ``remove_queue_name_prefix`` convert.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from ckan.common import config

from offload.contrib.ckan import transactional
from offload.contrib.ckan.rq_job import Job, NoSuchJob, no_such_job
from offload.contrib.ckan.rq_options import rq_options
from offload.contrib.ckan.rq_queue import Queue
from offload.contrib.ckan.site import (
    DEFAULT_QUEUE_NAME,
    add_queue_name_prefix,
    remove_queue_name_prefix,
    site_app,
)
from offload.contrib.ckan.worker import Worker
from offload.errors import JobNotFound

__all__ = [
    "DEFAULT_JOB_LIST_LIMIT",
    "DEFAULT_QUEUE_NAME",
    "Job",
    "NoSuchJob",
    "Queue",
    "Worker",
    "add_queue_name_prefix",
    "dictize_job",
    "enqueue",
    "get_all_queues",
    "get_queue",
    "job_from_id",
    "remove_queue_name_prefix",
    "test_job",
]

log = logging.getLogger("ckan.lib.jobs")

DEFAULT_JOB_LIST_LIMIT = 200


def get_queue(name: str = DEFAULT_QUEUE_NAME) -> Queue:
    """The queue called ``name`` (without prefix); the queue object's ``name`` is the prefixed one."""
    return Queue(name, site_app())


def get_all_queues() -> list[Queue]:
    """This site's queues that hold jobs (other sites sharing the store are left out)."""
    app = site_app()
    return [Queue(name, app) for name in app.queues()]


def enqueue(
    fn: Callable[..., Any] | str,
    args: Iterable[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    title: str | None = None,
    queue: str = DEFAULT_QUEUE_NAME,
    rq_kwargs: dict[str, Any] | None = None,
) -> Job:
    """Add a job that runs ``fn(*args, **kwargs)`` in a worker; returns the job.

    As CKAN's: ``rq_kwargs`` are RQ's ``enqueue_call`` options, ``timeout`` defaulting to ``ckan.jobs.timeout``
    as configured now (a ``timeout`` given as None is RQ's default, 180 s); ``meta["title"]`` is ``title``. See
    ``offload.contrib.ckan.rq_options`` for each option; offload adds ``task_status=(entity_type, entity_id,
    task_type)``.
    """
    options = dict(rq_kwargs or {})
    options["timeout"] = options.get("timeout", config.get("ckan.jobs.timeout", 180))
    parsed = rq_options(options)
    parsed.meta["title"] = title
    queue_object = get_queue(queue)
    session = transactional.connection_for(queue_object.app)
    job = queue_object.enqueue_job_with(fn, list(args) if args is not None else [],
                                        dict(kwargs) if kwargs is not None else {}, parsed, title=title,
                                        connection=session)
    if session is not None:
        transactional.joined(session, job.id)
    if title:
        log.info('Added background job %s ("%s") to queue "%s"', job.id, title, queue)
    else:
        log.info('Added background job %s to queue "%s"', job.id, queue)
    return job


def job_from_id(id: str) -> Job:
    """The job with this id, whatever its state; ``KeyError`` (``NoSuchJob``) if there is none."""
    app = site_app()
    try:
        return Job(app.get_job(id), app)
    except (JobNotFound, ValueError):
        raise no_such_job(id) from None


def dictize_job(job: Job) -> dict[str, Any]:
    """``{"id", "title", "created", "queue"}``: ``created`` in UTC as ``%Y-%m-%dT%H:%M:%S``, ``queue`` without
    prefix."""
    return {
        "id": job.id,
        "title": (job.meta or {}).get("title"),
        "created": job.created_at.strftime("%Y-%m-%dT%H:%M:%S"),
        "queue": remove_queue_name_prefix(job.origin),
    }


def test_job(*args: Any) -> None:
    """A job for trying a worker out: prints its arguments (``ckan jobs test`` enqueues it)."""
    print(args)
