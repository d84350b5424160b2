"""The small protocol every flavor implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from meshops.registry.models import Signature
from meshops.registry.signature import Wants


@dataclass(frozen=True)
class Predictor:
    """A loaded model reduced to one call. `wants` tells the signature adapter whether to
    hand it a DataFrame or a 2-D array."""

    raw: Any
    call: Callable[[Any], Any]
    wants: Wants


class Flavor(Protocol):
    name: str

    def detect(self, model: object) -> bool:
        """Is `model` an object this flavor saves?"""
        ...

    def matches_files(self, paths: list[str]) -> bool:
        """Do these relative file paths look like a folder this flavor wrote?"""
        ...

    def save(self, model: Any, directory: Path, options: dict[str, Any]) -> None:
        """Write the model's files into `directory` (which exists and is empty)."""
        ...

    def load(self, directory: Path, options: dict[str, Any]) -> Any:
        """Read the raw model back; refuse what cannot be loaded safely."""
        ...

    def validate(self, directory: Path, options: dict[str, Any]) -> None:
        """Check the files of a version being registered without running code from them:
        raise InvalidInput (naming the file and the fix) for one that would not load."""
        ...

    def predictor(self, raw: Any, signature: Signature | None = None) -> Predictor: ...


def loaded_module(name: str) -> Any:
    """The module if the caller has imported it already (detection never imports)."""
    import sys

    return sys.modules.get(name)
