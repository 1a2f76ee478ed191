"""Integrations of offload with web applications (each in its own subpackage, imported only on demand)."""
