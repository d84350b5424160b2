"""The project tests' checkouts: git (from tests.support.git) and edits of their files."""

from __future__ import annotations

from pathlib import Path

from tests.support.git import GIT_ENV, commit_all, git

__all__ = ["GIT_ENV", "ORDERS", "commit_all", "edit", "git"]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


ORDERS = Path("domains/sales/products/orders")
