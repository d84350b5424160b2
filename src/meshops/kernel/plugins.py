"""Objects named in settings as `module:attribute`, loaded when a home opens.

This is how the kernel uses the governance area's authorizer, authenticator and read
guard without importing any area: configuration names them.
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
