"""Fixtures of the fault battery: private store servers for the whole session, a work directory per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.harness import Servers


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    found = Servers(tmp_path_factory.mktemp("fault-servers"))
    yield found
    found.cleanup()


def explain(result: dict[str, object]) -> str:
    """The assertion message of a scenario: its verdict's reasons and its figures."""
    figures = {k: v for k, v in result.items() if k not in ("reasons", "recovery") and not isinstance(v, list)}
    return f"{result.get('reasons')}\n{figures}"
