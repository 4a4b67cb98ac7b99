"""Signals sent after the transaction that changed a PhysicalFile commits.

Each is sent with ``sender=PhysicalFile`` and ``file=<the PhysicalFile>``, plus:

- ``file_uploaded``: a row was created for a stored object (uploads and adopted orphans).
- ``file_tier_changed``: ``old_tier``, ``new_tier``.
- ``file_archived``: an expired HOT file reached COLD (also sends ``file_tier_changed``).
- ``file_visibility_changed``: ``old_visibility``, ``new_visibility``.
- ``file_deleted``: the row is gone (its object is removed right after, or left as an orphan).
- ``file_restored``: an archived file's restore was found complete (by the ``complete_restores``
  task, or by a later request): ``restored_until`` (a datetime, or None for Intelligent-Tiering).
  A move that waited for it follows (``file_tier_changed``).

Which of them a change calls for is decided in one place, ``events.py``, from what the ORM
adapter reports it changed.
"""

from __future__ import annotations

from typing import Any

from django.db import router, transaction
from django.dispatch import Signal

__all__ = [
    "file_archived",
    "file_deleted",
    "file_restored",
    "file_tier_changed",
    "file_uploaded",
    "file_visibility_changed",
    "send_on_commit",
]

file_uploaded = Signal()
file_tier_changed = Signal()
file_archived = Signal()
file_visibility_changed = Signal()
file_deleted = Signal()
file_restored = Signal()


def send_on_commit(signal: Signal, file: Any, *, using: str | None = None, **extra: Any) -> None:
    """Send ``signal`` for ``file`` once the current transaction on ``using`` commits (at once outside one).

    ``using`` defaults to the database the row was written to: the router's choice for ``file``.
    """
    from .models import PhysicalFile

    # Nobody listening: skip the on-commit hook (an archival batch would register one per row).
    if signal.has_listeners(PhysicalFile):
        using = using or router.db_for_write(PhysicalFile, instance=file)
        transaction.on_commit(lambda: signal.send(sender=PhysicalFile, file=file, **extra), using=using)
