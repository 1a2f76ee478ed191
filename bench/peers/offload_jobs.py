"""Job functions for offload (plain functions; offload's executors import them by path
``offload_jobs:<name>``, with bench/peers on PYTHONPATH)."""

from _jobbodies import mark, noop, record, sleep, stamp

__all__ = ["mark", "noop", "record", "sleep", "stamp"]
