"""django-s3strata: tiered (HOT/COLD) S3 object storage for Django, interoperable with s3strata."""

from __future__ import annotations

from .core import *  # noqa: F403  (the core's public names are this package's too)
from .core import FileManager
from .core import __all__ as _core_all

__version__ = "0.1.0"
__all__ = [*_core_all, "__version__", "get_file_manager"]


def get_file_manager(name: str = "default") -> FileManager:
    """Return the FileManager of ``settings.S3STRATA``'s configuration ``name`` (imports Django)."""
    from .services import get_file_manager as _get

    return _get(name)
