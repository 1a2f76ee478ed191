"""Job functions for RQ (plain functions; RQ's worker imports them by path ``rq_jobs.<name>``)."""

from _jobbodies import mark, noop, record, sleep, stamp

__all__ = ["mark", "noop", "record", "sleep", "stamp"]
