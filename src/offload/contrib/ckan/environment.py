"""Loads CKAN's environment when imported in a process that has none yet.

``ckan offload worker`` passes ``--import offload.contrib.ckan.environment`` so that each executor of an offload
worker (a fresh process) loads CKAN's environment from ``$CKAN_CONFIG`` (set by CKAN when it loaded its config,
inherited by the executors) or ``$CKAN_INI`` before it runs a job.
"""

from __future__ import annotations

import os

from ckan.common import config


def load() -> None:
    if config.get("__file__"):
        return  # this process has loaded CKAN already
    path = os.environ.get("CKAN_CONFIG") or os.environ.get("CKAN_INI")
    if not path:
        raise RuntimeError("set CKAN_INI to CKAN's config file: offload's executors load CKAN's environment from it")
    from ckan.cli import load_config
    from ckan.config.environment import load_environment

    load_environment(load_config(path))


load()
