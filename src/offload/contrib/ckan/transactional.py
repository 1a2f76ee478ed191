"""``ckan.offload.transactional = true``: ``toolkit.enqueue_job`` joins the action's database transaction.

With the setting on, a job enqueued while CKAN's SQLAlchemy session (``model.Session``) has written in its
current transaction (rows flushed, or changes waiting to be flushed) is written through that session, in that
transaction: it exists, and wakes a worker, only when the action commits (``model.repo.commit()``), and is
gone when the action fails and CKAN rolls the session back (at the end of the request). An extension that
enqueues from ``after_dataset_create`` thus leaves no job behind for a dataset whose creation failed later on.

A job enqueued where the session has written nothing in its transaction (the CLI, a job that only reads, an
action before its first write) is stored at once, as without the setting: there is nothing for it to be
consistent with, and code that never commits would otherwise lose it.

The setting needs the store in CKAN's own PostgreSQL database (``ckan.offload.store = postgresql://...``, the
database of ``sqlalchemy.url``; offload's tables stay in their own schema); any other store is an error at
enqueue, naming the setting.
"""

from __future__ import annotations

import logging
from typing import Any

from ckan.common import asbool, config

from offload.app import Offload
from offload.errors import ConfigError

log = logging.getLogger("ckan.lib.jobs")

_PENDING = "offload_pending_job_ids"  # session.info key: ids enqueued in the session's current transaction


def enabled() -> bool:
    return bool(asbool(config.get("ckan.offload.transactional", False)))


def connection_for(app: Offload) -> Any | None:
    """The session to enqueue through (None: enqueue at once), when ``ckan.offload.transactional`` is on."""
    if not enabled():
        return None
    if not hasattr(app.store, "enqueue_in_transaction"):
        raise ConfigError(
            "ckan.offload.transactional = true needs the jobs in CKAN's own PostgreSQL database, but this "
            f"site's store is {app.store.safe_url}: set ckan.offload.store to the database of sqlalchemy.url "
            "(postgresql://...?schema=offload), or turn ckan.offload.transactional off"
        )
    from ckan import model

    session = model.Session()
    if not session.in_transaction():
        return None
    if not (session.new or session.dirty or session.deleted or _has_written(session)):
        return None
    _watch(session)
    return session


def _has_written(session: Any) -> bool:
    """Whether the session's transaction has written to the database (PostgreSQL gives a transaction an id
    at its first write)."""
    from sqlalchemy import text

    return session.execute(text("SELECT txid_current_if_assigned() IS NOT NULL")).scalar() is True


def joined(session: Any, job_id: str) -> None:
    """Remember that ``job_id`` was written in the session's transaction, to say so if it rolls back."""
    session.info.setdefault(_PENDING, []).append(job_id)


def _watch(session: Any) -> None:
    """Log the jobs of a transaction that ends without a commit (they were never stored), once per session."""
    if session.info.get("offload_watched"):
        return
    from sqlalchemy import event

    session.info["offload_watched"] = True

    def committed(s: Any) -> None:
        s.info.pop(_PENDING, None)

    def ended(s: Any, transaction: Any) -> None:
        if transaction.parent is None and s.info.get(_PENDING):
            ids = s.info.pop(_PENDING)
            log.info("Background job(s) %s not stored: the database transaction they were enqueued in was "
                     "rolled back (ckan.offload.transactional)", ", ".join(ids))

    event.listen(session, "after_commit", committed)
    event.listen(session, "after_transaction_end", ended)
