"""What a change to PhysicalFile rows sets off: the public signals, on commit, and the internal notice, at once.

The ORM adapter writes rows and hands each change here as a ``Change``; this module alone decides
which of ``signals.py``'s signals a change calls for and sends them once the transaction commits.

``rows_changed`` is the internal notice for caches above the model layer (the storage's name
cache): it is sent at once, inside the transaction, with ``sender=PhysicalFile`` and
``changes=[Change, ...]``, once per write however many rows it changed (an archival batch: once),
and it registers no on-commit hook, so the public signals still cost nothing when nobody listens.
Its subscribers are connected in ``AppConfig.ready()``: the model layer never imports a face.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.dispatch import Signal

from . import conf, signals
from .core.types import StorageTier
from .models import PhysicalFile

__all__ = ["Change", "apublish", "publish", "rows_changed"]

rows_changed = Signal()


@dataclass(frozen=True)
class Change:
    """One row's change: ``before`` is None for a created row, ``after`` None for a deleted one."""

    before: PhysicalFile | None
    after: PhysicalFile | None


Send = tuple[Signal, PhysicalFile, dict[str, Any]]


def _visibility(record: PhysicalFile) -> str | None:
    try:
        return conf.get_settings(getattr(record, "config", None)).layout.location(record)[1].value
    except ValueError:  # a path under neither prefix (InvalidKeyError), an unknown tier
        return None


def _sends(changes: Iterable[Change]) -> Iterator[Send]:
    """Yield the public signals ``changes`` call for, in order."""
    for change in changes:
        before, after = change.before, change.after
        if before is None and after is not None:
            yield signals.file_uploaded, after, {}
        elif after is None and before is not None:
            yield signals.file_deleted, before, {}
        elif before is not None and after is not None:
            if before.storage_tier != after.storage_tier:
                yield signals.file_tier_changed, after, {"old_tier": before.storage_tier, "new_tier": after.storage_tier}
                if (
                    after.storage_tier == StorageTier.COLD.value
                    and before.hot_until is not None
                    and before.hot_until <= after.updated_at
                ):
                    yield signals.file_archived, after, {}
            if before.path != after.path:
                old_vis, new_vis = _visibility(before), _visibility(after)
                if old_vis != new_vis:
                    yield signals.file_visibility_changed, after, {"old_visibility": old_vis, "new_visibility": new_vis}
            if getattr(after, "archive_state", None) == "RESTORED" and getattr(before, "archive_state", None) != "RESTORED":
                yield signals.file_restored, after, {"restored_until": getattr(after, "restore_expires", None)}


def publish(changes: list[Change]) -> None:
    """Notify ``rows_changed`` at once, then send the public signals once the current transaction commits."""
    if not changes:
        return
    rows_changed.send(sender=PhysicalFile, changes=changes)
    for signal, file, extra in _sends(changes):
        signals.send_on_commit(signal, file, **extra)


async def apublish(changes: list[Change]) -> None:
    """Notify ``rows_changed`` and send the public signals at once: for rows the async ORM has committed."""
    if not changes:
        return
    rows_changed.send(sender=PhysicalFile, changes=changes)
    for signal, file, extra in _sends(changes):
        if signal.has_listeners(PhysicalFile):
            await signal.asend(sender=PhysicalFile, file=file, **extra)
