from __future__ import annotations

from collections.abc import Iterator

import pytest

from meshops.serving.runtime import close_all_runtimes


@pytest.fixture(autouse=True)
def _close_runtimes() -> Iterator[None]:
    """Each test's homes go away with it: stop their serving threads too."""
    yield
    close_all_runtimes()
