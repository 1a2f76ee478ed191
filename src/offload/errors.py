"""Every error offload raises on purpose.

    OffloadError
    ├── ConfigError            a setting is unknown, malformed or contradicts another
    ├── JobFunctionError       the callable cannot be run by a worker (lambda, nested, __main__ ...)
    ├── SerializationError     an argument or result cannot be encoded as offload's JSON
    ├── InvalidQueueName       a queue name with characters outside [A-Za-z0-9_.-]
    ├── JobNotFound            no job with that id on this site
    ├── InvalidJobState        the verb does not apply to the job's current state
    ├── SelectionChanged       a bulk action's filter no longer matches the number of jobs confirmed
    ├── DuplicateJob           (raised only when the caller asks: ``on_duplicate="raise"``)
    ├── TaskNotFound           no task registered under that name
    ├── JobTimeout             raised inside a job that reached its time limit (the soft timeout)
    ├── StoreError             the storage engine failed
    │   ├── StoreURLError      the store URL has an unknown scheme or is malformed
    │   ├── StoreDriverMissing the engine's driver is not installed (names the extra)
    │   └── StoreUnavailable   the server cannot be reached
    └── LeaseLost              a settle arrived after the job's lease moved on (fencing)

Each class docstring is its default message, so ``raise JobNotFound()`` already says something useful.
"""

from __future__ import annotations


class OffloadError(Exception):
    """An offload operation failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(OffloadError):
    """The configuration is not valid."""


class JobFunctionError(OffloadError):
    """This callable cannot be run as a job; pass a module-level function or an import path."""


class SerializationError(OffloadError):
    """A value cannot be encoded as offload's JSON."""


class InvalidQueueName(OffloadError):
    """Queue names may only contain letters, digits, '_', '-' and '.'."""


class JobNotFound(OffloadError):
    """There is no job with that id."""


class InvalidJobState(OffloadError):
    """The job is not in a state that allows this operation."""


class SelectionChanged(OffloadError):
    """The filter matches a different number of jobs than was confirmed; review the list and confirm again."""


class DuplicateJob(OffloadError):
    """A job with the same id or unique key is already pending."""

    def __init__(self, message: str | None = None, existing_id: str | None = None) -> None:
        super().__init__(message)
        self.existing_id = existing_id


class TaskNotFound(OffloadError):
    """No task is registered under that name; import the module that defines it."""


class JobTimeout(OffloadError):
    """The job reached its time limit. Raised inside the job by the worker (the soft timeout): clean up and
    let it propagate; a job still running ``offload.jobs.timeout_grace`` seconds later is killed."""


class StoreError(OffloadError):
    """The job store failed."""


class StoreURLError(StoreError):
    """The store URL is not valid; use sqlite:///path, redis://host, postgresql://host/db or memory://."""


class StoreDriverMissing(StoreError):
    """The driver for this store engine is not installed."""


class StoreUnavailable(StoreError):
    """The job store cannot be reached."""


class LeaseLost(OffloadError):
    """The job's lease was lost: another attempt owns it now, so this result is discarded."""
