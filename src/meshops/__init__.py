"""meshops: a self-serve data mesh and MLOps platform."""

from meshops.client import Platform, connect, load_model

__all__ = ["Platform", "__version__", "connect", "load_model"]
__version__ = "0.1.0"
