"""Homes that send their OpenLineage events through the openlineage-python client's file
transport (configured in the home's meshops.toml, so a pipeline step's own
`meshops.connect()` sends through it too), and the events read back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshops.client import Platform
from meshops.kernel.home import Home
from tests.conftest import make_settings

NAMESPACE = "meshops://ol-test"


class Events:
    def __init__(self, path: Path) -> None:
        self.path = path

    def all(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def of_job(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.all() if e["job"]["name"] == name]

    def jobs(self) -> set[str]:
        return {e["job"]["name"] for e in self.all()}


def write_config(home_dir: Path, events: Path) -> None:
    home_dir.mkdir(parents=True, exist_ok=True)
    (home_dir / "meshops.toml").write_text(
        f'[openlineage]\ntransport = "file"\npath = "{events}"\nnamespace = "{NAMESPACE}"\n'
    )


@pytest.fixture
def ol_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Platform, Events]]:
    """An embedded platform whose home sends OpenLineage events to a JSON-lines file; the
    environment points `meshops.connect()` (pipeline steps) at the same home."""
    home_dir = tmp_path / "home"
    events = tmp_path / "openlineage.jsonl"
    write_config(home_dir, events)
    for name in ("MESHOPS_URI", "MESHOPS_TOKEN", "MESHOPS_RUN_AS", "MESHOPS_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MESHOPS_HOME", str(home_dir))
    home = Home(make_settings(home_dir))
    platform = Platform(home.settings, home=home)
    yield platform, Events(events)
    platform.close()
    home.close()
