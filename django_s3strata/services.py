"""The process-wide FileManager built from ``settings.S3STRATA`` with the ORM adapter."""

from __future__ import annotations

import threading
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver

from . import conf
from .core.manager import FileManager
from .core.types import FileVisibility, StorageTier, UploadOptions

__all__ = ["get_file_manager", "reset_file_manager", "store_upload"]

_lock = threading.Lock()
_manager: FileManager | None = None


def get_file_manager() -> FileManager:
    """Return the process-wide FileManager (async API; ``.sync`` for the sync face)."""
    global _manager
    manager = _manager
    if manager is None:
        with _lock:
            if _manager is None:
                from .adapters import DjangoORMAdapter

                _manager = FileManager(conf.get_settings().config, DjangoORMAdapter())
            manager = _manager
    return manager


def reset_file_manager() -> None:
    """Forget the FileManager and the parsed settings; the next call rebuilds both."""
    global _manager
    with _lock:
        _manager = None
        conf.reset()


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "S3STRATA":
        reset_file_manager()


def store_upload(
    content: Any,
    filename: str,
    suffix: str,
    tier: StorageTier | None = None,
    visibility: FileVisibility | None = None,
    hot_duration: int | None = None,
) -> Any:
    """Stream a Django File or upload into storage and return its PhysicalFile (size and type recorded).

    Options left as None fall back to ``STORAGE_TIER``/``STORAGE_VISIBILITY``/``STORAGE_HOT_DURATION``,
    then to the core's defaults.
    """
    from .core.contenttypes import stored_type

    opts = conf.get_settings().options
    # A browser's Content-Type is a claim: the file name's type wins where they disagree, and a
    # malformed or active claim that the name does not back is not stored (docs/direct-uploads.md).
    claimed = getattr(content, "content_type", None)
    content_type = stored_type(claimed, filename) if claimed else None
    if hasattr(content, "seek") and getattr(content, "seekable", lambda: True)():
        content.seek(0)
    source = content.file if getattr(content, "file", None) is not None else content
    record = get_file_manager().sync.upload(
        source,
        UploadOptions(
            tier or opts["STORAGE_TIER"],
            visibility or opts["STORAGE_VISIBILITY"],
            filename,
            suffix,
            hot_duration if hot_duration is not None else opts["STORAGE_HOT_DURATION"],
            content_type,
        ),
    )
    # The row was written once with what S3 stored (size, content type, ETag): no second UPDATE.
    return record
