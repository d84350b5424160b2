"""meshops: a self-serve data mesh and MLOps platform.

`connect`, `load_model` and `Platform` are imported on first use, so that `import meshops`
(and every CLI start) stays cheap. Importing the package wires the areas together
(`assembly.install()`: it binds the kernel's ports and imports no area), so every entry
point, the SDK, the server, the CLI, a worker or a test opening a `Home`, runs wired.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshops import assembly

__version__ = "0.1.0"
__all__ = ["Platform", "__version__", "connect", "load_model"]

if TYPE_CHECKING:
    from meshops.client import Platform, connect, load_model

assembly.install()


def __getattr__(name: str) -> Any:
    if name in ("Platform", "connect", "load_model"):
        from meshops import client

        return getattr(client, name)
    raise AttributeError(f"module 'meshops' has no attribute {name!r}")
