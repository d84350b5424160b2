"""Fixtures of the mesh tests: the retail example copied to a temp folder with fresh data."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.products import data_contract, data_product

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "retail"


def generate_example(target: Path, rows: int = 2000) -> Path:
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("data", "__pycache__"))
    spec = importlib.util.spec_from_file_location("retail_generate", target / "generate_data.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(target / "data", rows=rows, customers=200)
    return target


@pytest.fixture
def retail(tmp_path: Path) -> Path:
    return generate_example(tmp_path / "retail")


def contract(
    columns: list[dict[str, Any]],
    quality: list[dict[str, Any]] | None = None,
    sla: list[dict[str, Any]] | None = None,
    name: str = "items",
) -> dict[str, Any]:
    return data_contract(f"test-{name}", name, columns, quality=quality, sla=sla)


def descriptor(
    version: str = "1.0.0", name: str = "items", domain: str = "shop", owner: str = "alice"
) -> dict[str, Any]:
    return data_product(
        f"{domain}.{name}", f"test-{name}", version=version, owner=owner, tags=["test"]
    )
