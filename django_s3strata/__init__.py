"""django-s3strata: tiered (HOT/COLD) S3 object storage for Django, interoperable with s3strata."""

from __future__ import annotations

from .core import *  # noqa: F403  (the core's public names are this package's too)
from .core import __all__ as _core_all

__version__ = "0.1.0"
__all__ = [*_core_all, "__version__"]
