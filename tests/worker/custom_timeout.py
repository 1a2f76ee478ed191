"""Imported by a worker (``--import``) to make the soft timeout raise ``CustomTimeout``, as an integration does."""

from offload.context import use_timeout_exception
from tests.worker.timeout_jobs import CustomTimeout

use_timeout_exception(CustomTimeout)
