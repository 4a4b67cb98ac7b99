"""The process-wide FileManagers built from ``settings.S3STRATA`` (one per configuration) with the ORM adapter."""

from __future__ import annotations

import threading
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver

from . import conf
from .core.manager import FileManager
from .core.types import FileVisibility, StorageTier, UploadOptions

__all__ = ["config_names", "get_file_manager", "reset_file_manager", "store_upload"]

_lock = threading.Lock()
_managers: dict[str, FileManager] = {}


def config_names() -> list[str]:
    """Return the names of the ``S3STRATA`` configurations, ``"default"`` first."""
    return conf.config_names()


def get_file_manager(name: str | None = None) -> FileManager:
    """Return configuration ``name``'s process-wide FileManager (None: "default"); async API, ``.sync`` for the sync face.

    An unknown name raises ConfigurationError listing the configurations there are.
    """
    key = name or conf.DEFAULT
    manager = _managers.get(key)
    if manager is None:
        with _lock:
            manager = _managers.get(key)
            if manager is None:
                from .adapters import DjangoORMAdapter

                manager = FileManager(conf.get_settings(key).config, DjangoORMAdapter(config=key))
                _managers[key] = manager
    return manager


def reset_file_manager() -> None:
    """Forget the FileManagers and the parsed settings; the next call rebuilds both."""
    with _lock:
        _managers.clear()
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
    config: str | None = None,
) -> Any:
    """Stream a Django File or upload into configuration ``config``'s storage and return its PhysicalFile.

    Size and type are recorded. Options left as None fall back to the configuration's
    ``STORAGE_TIER``/``STORAGE_VISIBILITY``/``STORAGE_HOT_DURATION``, then to the core's defaults.
    """
    from .core.contenttypes import stored_type

    opts = conf.get_settings(config).options
    # A browser's Content-Type is a claim: the file name's type wins where they disagree, and a
    # malformed or active claim that the name does not back is not stored (docs/direct-uploads.md).
    claimed = getattr(content, "content_type", None)
    content_type = stored_type(claimed, filename) if claimed else None
    if hasattr(content, "seek") and getattr(content, "seekable", lambda: True)():
        content.seek(0)
    source = content.file if getattr(content, "file", None) is not None else content
    record = get_file_manager(config).sync.upload(
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
