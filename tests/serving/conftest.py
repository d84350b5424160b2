from __future__ import annotations

from collections.abc import Iterator

import pytest

from meshops.serving.runtime import close_all_runtimes


@pytest.fixture(autouse=True)
def _close_runtimes() -> Iterator[None]:
    """Each test's serving threads stop with it (a shared home gets a fresh runtime)."""
    yield
    close_all_runtimes()


_names = iter(range(1_000_000))


@pytest.fixture
def uniq() -> str:
    """A short suffix so tests sharing a platform never collide on names."""
    return f"t{next(_names)}"
