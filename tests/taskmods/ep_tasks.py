"""A task module contributed through the offload.tasks entry-point group."""

import offload


@offload.task(name="tests.from_entry_point")
def hello(name: str) -> str:
    return f"hello {name}"
