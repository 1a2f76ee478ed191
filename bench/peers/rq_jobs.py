"""Job functions for RQ (plain functions; RQ's worker imports them by path ``rq_jobs.<name>``)."""

from _jobbodies import mark, noop, sleep, stamp

__all__ = ["mark", "noop", "sleep", "stamp"]
