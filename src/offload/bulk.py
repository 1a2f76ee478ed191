"""Bulk actions: retry, cancel or delete every job a search matches (the dashboard's and the API's bulk buttons,
``offload retry/cancel/delete --filter``). The ids are read first, then each job is acted on through the same
verb as a single job, so a job whose state no longer allows it (a retry of a job that is queued meanwhile) is
skipped and counted, never forced. ``expected`` is the count the operator confirmed: if the filter matches a
different number by then, nothing is done."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from offload.errors import InvalidJobState, JobNotFound, SelectionChanged
from offload.jobs import JobQuery

if TYPE_CHECKING:
    from offload.app import Offload

BULK_ACTIONS = ("retry", "cancel", "delete")
#: The most jobs one bulk action takes; a wider filter is refused (narrow it, or repeat).
BULK_LIMIT = 10_000
_PAGE = 1000


@dataclass
class BulkResult:
    action: str
    matched: int
    done: int
    skipped: int

    def to_dict(self) -> dict[str, object]:
        return {"action": self.action, "matched": self.matched, "done": self.done, "skipped": self.skipped}


def matching_ids(app: Offload, query: JobQuery, limit: int = BULK_LIMIT) -> list[str]:
    """The ids of every job ``query`` matches; ValueError when that is more than ``limit``."""
    first = app.store.search(query, _PAGE, 0)
    if first.total > limit or not first.exact:
        shown = f"{first.total}" if first.exact else f"at least {first.total}"
        raise ValueError(f"the filter matches {shown} jobs; a bulk action takes at most {limit}: narrow the filter")
    ids = [job.id for job in first.jobs]
    while len(ids) < first.total:
        page = app.store.search(query, _PAGE, len(ids)).jobs
        if not page:
            break
        ids.extend(job.id for job in page)
    return list(dict.fromkeys(ids))


def apply(app: Offload, action: str, query: JobQuery, expected: int | None = None) -> BulkResult:
    """Run ``action`` (retry, cancel or delete) on every job ``query`` matches."""
    _check(action)
    ids = matching_ids(app, query)
    if expected is not None and expected != len(ids):
        raise SelectionChanged(f"the filter now matches {len(ids)} jobs, not the {expected} confirmed; review the "
                               "list and confirm again")
    return apply_ids(app, action, ids)


def _check(action: str) -> None:
    if action not in BULK_ACTIONS:
        raise ValueError(f"unknown bulk action {action!r}; use one of {', '.join(BULK_ACTIONS)}")


def apply_ids(app: Offload, action: str, ids: list[str]) -> BulkResult:
    """Run ``action`` on the jobs with these ids (a selection); unknown ids and jobs whose state does not allow
    it are skipped and counted."""
    _check(action)
    if len(ids) > BULK_LIMIT:
        raise ValueError(f"a bulk action takes at most {BULK_LIMIT} jobs, not {len(ids)}")
    ids = list(dict.fromkeys(ids))
    verbs: dict[str, Callable[[str], object]] = {"retry": app.retry, "cancel": app.cancel, "delete": app.delete}
    done = skipped = 0
    for job_id in ids:
        try:
            verbs[action](job_id)
            done += 1
        except (InvalidJobState, JobNotFound):
            skipped += 1
    return BulkResult(action, len(ids), done, skipped)
