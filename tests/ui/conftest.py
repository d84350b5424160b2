"""One seeded demo home per test session for the UI tests (seeding takes a few seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meshops.kernel.home import Home
from meshops.serving.runtime import close_all_runtimes
from tests.conftest import make_settings
from tests.ui.demo import Demo, seed


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Home, Demo]]:
    root = tmp_path_factory.mktemp("ui-demo")
    home = Home(make_settings(root / "home"))
    demo = seed(home, root)
    yield home, demo
    close_all_runtimes()
    home.close()
