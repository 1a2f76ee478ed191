"""offload: background jobs."""
