"""The routes and SDK signatures stay as they were before the RPC layer (snapshot taken
before the change; deliberate fixes update it with `python -m tests.architecture.surface`)."""

from __future__ import annotations

import json

from tests.architecture.surface import SNAPSHOT, http_routes, sdk_signatures


def test_http_routes_are_unchanged() -> None:
    expected = json.loads(SNAPSHOT.read_text())["http"]
    actual = http_routes()
    assert sorted(set(expected) - set(actual)) == [], "routes lost"
    assert sorted(set(actual) - set(expected)) == [], "routes added: update the snapshot"


def test_sdk_signatures_are_unchanged() -> None:
    expected = json.loads(SNAPSHOT.read_text())["sdk"]
    assert sdk_signatures() == expected
