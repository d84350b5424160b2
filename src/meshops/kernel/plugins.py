"""Objects named in settings as `module:attribute`, loaded when a home opens.

This is how a home uses an authorizer, read guard or promotion gate that a user's
`meshops.toml` names. The defaults are not named here: they are the areas' providers of the
kernel's ports (kernel/ports.py), bound by `meshops.assembly`.
"""

from __future__ import annotations

import importlib
from typing import Any

from meshops.kernel.errors import InvalidInput


def load_object(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise InvalidInput(
            f"not an object path: {path!r}", {"fix": "write it as 'package.module:Name'"}
        )
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attribute)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(f"cannot load {path!r}: {exc}", {"setting": path}) from exc
