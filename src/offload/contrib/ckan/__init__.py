"""offload for CKAN: a stand-in for ``ckan.lib.jobs`` and a CKAN plugin that switches a site to it.

- ``offload.contrib.ckan.jobs``: the public surface of CKAN 2.12's ``ckan.lib.jobs`` backed by offload.
- ``offload.contrib.ckan.plugin:OffloadPlugin``: the ``offload`` CKAN plugin (``ckan.plugins = offload ...``).

See docs/ckan.md.
"""
