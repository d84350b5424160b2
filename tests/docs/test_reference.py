"""The generated reference (docs/reference/cli.md, openapi.json, http-api.md) is current."""

from __future__ import annotations

import difflib
import json

from meshops.cli import docs
from tests.docs.blocks import ROOT

REFERENCE = ROOT / "docs" / "reference"


def test_generated_reference_is_current() -> None:
    stale = []
    for name, content in docs.render().items():
        path = REFERENCE / name
        committed = path.read_text(encoding="utf-8") if path.exists() else ""
        if committed != content:
            diff = difflib.unified_diff(
                committed.splitlines(), content.splitlines(), f"committed {name}", "code", n=1
            )
            stale.append(f"{path.relative_to(ROOT)}:\n" + "\n".join(list(diff)[:30]))
    assert not stale, (
        "the generated reference is stale; fix: run `make docs` "
        "(python -m meshops.cli.docs docs/reference) and commit docs/reference/\n\n"
        + "\n\n".join(stale)
    )


def test_cli_reference_covers_every_command() -> None:
    text = docs.cli_reference()
    for command in ("meshops product publish", "meshops models alias set", "meshops server"):
        assert f"`{command}`" in text
    assert "/root" not in text and "/home/" not in text  # nothing from the machine


def test_http_reference_lists_every_path() -> None:
    doc = json.loads((REFERENCE / "openapi.json").read_text(encoding="utf-8"))
    listing = (REFERENCE / "http-api.md").read_text(encoding="utf-8")
    for path in doc["paths"]:
        assert f"`{path}`" in listing, path
