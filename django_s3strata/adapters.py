"""DjangoORMAdapter: the core's StorageAdapter on the PhysicalFile model (async ORM and a sync face)."""

from __future__ import annotations

import copy
from collections import defaultdict
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.utils import timezone

from . import signals
from .core.adapters import Move, StorageAdapter, SyncStorageAdapter
from .core.types import UNSET, FileId, ObjectInfo, StorageTier
from .inserts import AsyncInserts, insert_one
from .models import PhysicalFile
from .querysets import in_array, pk_in

__all__ = ["DjangoORMAdapter", "DjangoORMSyncAdapter", "now_ms"]


def now_ms() -> datetime:
    """Return the current UTC time at millisecond precision (what Prisma stores)."""
    now = timezone.now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _ms(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    return value


def _tier(value: Any) -> str:
    return StorageTier(value).value


def _new_row(storage_tier: Any, filename: str, path: str, hot_until: Any, stored: ObjectInfo | None = None) -> dict[str, Any]:
    # Both timestamps explicitly: a table shared with Prisma has no database default for updated_at.
    now = now_ms()
    row = {
        "storage_tier": _tier(storage_tier),
        "filename": filename,
        "path": path,
        "hot_until": _ms(hot_until),
        "created_at": now,
        "updated_at": now,
    }
    if stored is not None:
        row.update(size=stored.size, etag=stored.etag, content_type=stored.content_type)
    return row


def _changes(storage_tier: Any, path: Any, hot_until: Any, now: datetime | None = None) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if storage_tier is not UNSET:
        changes["storage_tier"] = _tier(storage_tier)
    if path is not UNSET:
        changes["path"] = path
    if hot_until is not UNSET:
        changes["hot_until"] = _ms(hot_until)
    changes["updated_at"] = now or now_ms()
    if "storage_tier" in changes:
        # A committed tier move ends any archival claim on the row.
        changes["lease_owner"] = changes["lease_until"] = None
    return changes


def _applied(before: PhysicalFile, changes: dict[str, Any]) -> PhysicalFile:
    """Return a copy of ``before`` with ``changes`` applied (what the row now holds, without reading it)."""
    after = copy.copy(before)
    for name, value in changes.items():
        setattr(after, name, value)
    return after


def _existing_paths(storage_tier: Any, paths: list[str]) -> Any:
    """Return the paths among ``paths`` that have a row in ``storage_tier``: one query per listing page."""
    return PhysicalFile.objects.filter(in_array("path", paths, "text"), storage_tier=_tier(storage_tier)).values_list(
        "path", flat=True
    )


def _where(id: FileId, expected_tier: Any, expected_path: str) -> Any:
    return PhysicalFile.objects.filter(pk=id, storage_tier=_tier(expected_tier), path=expected_path)


def _forget_names() -> None:
    from .storage import clear_cache

    clear_cache()


def _update_signals(before: PhysicalFile, after: PhysicalFile) -> list[tuple[Any, dict[str, Any]]]:
    """Return the tier, archive and visibility signals an update calls for."""
    _forget_names()
    sends: list[tuple[Any, dict[str, Any]]] = []
    if before.storage_tier != after.storage_tier:
        sends.append((signals.file_tier_changed, {"old_tier": before.storage_tier, "new_tier": after.storage_tier}))
        if after.storage_tier == StorageTier.COLD.value and before.hot_until is not None and before.hot_until <= after.updated_at:
            sends.append((signals.file_archived, {}))
    if before.path != after.path:
        old_vis, new_vis = _visibility(before), _visibility(after)
        if old_vis != new_vis:
            sends.append((signals.file_visibility_changed, {"old_visibility": old_vis, "new_visibility": new_vis}))
    return sends


def _visibility(record: PhysicalFile) -> str | None:
    from .services import get_file_manager

    try:
        return get_file_manager().visibility_of(record).value
    except ValueError:
        return None


class DjangoORMSyncAdapter(SyncStorageAdapter):
    """Records as PhysicalFile rows, for sync callers: plain ORM calls, no event loop."""

    def create(self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None) -> PhysicalFile:
        return self._insert(_new_row(storage_tier, filename, path, hot_until))

    def create_stored(
        self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None, stored: ObjectInfo
    ) -> PhysicalFile:
        return self._insert(_new_row(storage_tier, filename, path, hot_until, stored))

    @staticmethod
    def _insert(row: dict[str, Any]) -> PhysicalFile:
        # One prepared INSERT on this thread's own connection (see inserts.py).
        record = insert_one(row)
        signals.send_on_commit(signals.file_uploaded, record)
        return record

    def find_by_id(self, id: FileId) -> PhysicalFile | None:
        return PhysicalFile.objects.filter(pk=id).first()

    def update(self, id: FileId, storage_tier: Any = UNSET, path: Any = UNSET, hot_until: Any = UNSET) -> PhysicalFile:
        changes = _changes(storage_tier, path, hot_until)
        with transaction.atomic():
            before = PhysicalFile.objects.select_for_update().get(pk=id)
            PhysicalFile.objects.filter(pk=id).update(**changes)
            after = PhysicalFile.objects.get(pk=id)
            for signal, extra in _update_signals(before, after):
                signals.send_on_commit(signal, after, **extra)
        return after

    def update_if(
        self,
        id: FileId,
        expected_tier: StorageTier,
        expected_path: str,
        storage_tier: Any = UNSET,
        path: Any = UNSET,
        hot_until: Any = UNSET,
    ) -> PhysicalFile | None:
        before = _where(id, expected_tier, expected_path).first()
        if before is None:
            return None
        changes = _changes(storage_tier, path, hot_until)
        # The UPDATE re-checks the location, so of two racing moves exactly one commits.
        if not _where(id, expected_tier, expected_path).update(**changes):
            return None
        after = _applied(before, changes)
        for signal, extra in _update_signals(before, after):
            signals.send_on_commit(signal, after, **extra)
        return after

    def update_many_if(self, moves: list[Move]) -> list[PhysicalFile | None]:
        if not connection.features.has_select_for_update:
            return [self.update_if(r.id, r.storage_tier, r.path, **changes) for r, changes in moves]
        now = now_ms()
        out: list[PhysicalFile | None] = []
        groups: dict[tuple[tuple[str, Any], ...], list[Any]] = defaultdict(list)
        with transaction.atomic():
            # The rows stay locked until the commit, so checking their location here is race-free;
            # only the location is read back: the records in hand are the rest.
            pks = [r.pk for r, _ in moves]
            where = PhysicalFile.objects.select_for_update().filter(pk_in(pks))
            now_at = {
                pk: (tier, path, until) for pk, tier, path, until in where.values_list("pk", "storage_tier", "path", "hot_until")
            }
            for record, given in moves:
                found = now_at.get(record.pk)
                if found is None or found[:2] != (_tier(record.storage_tier), record.path):
                    out.append(None)
                    continue
                changes = _changes(*(given.get(k, UNSET) for k in ("storage_tier", "path", "hot_until")), now=now)
                before = _applied(record, {"hot_until": found[2]})
                after = _applied(before, changes)
                out.append(after)
                groups[tuple(sorted(changes.items()))].append(record.pk)
                for signal, extra in _update_signals(before, after):
                    signals.send_on_commit(signal, after, **extra)
            # One UPDATE for all rows that change alike (an archival batch: all of them).
            for changes_key, ids in groups.items():
                PhysicalFile.objects.filter(pk_in(ids)).update(**dict(changes_key))
        return out

    def delete(self, id: FileId) -> None:
        record = PhysicalFile.objects.filter(pk=id).first()
        if record is None:
            return
        count, _ = PhysicalFile.objects.filter(pk=id).delete()
        _forget_names()
        if count:
            signals.send_on_commit(signals.file_deleted, record)

    def find_expired_hot_files(self) -> list[PhysicalFile]:
        return list(PhysicalFile.objects.expired())

    def find_all(self) -> list[PhysicalFile]:
        return list(PhysicalFile.objects.all())

    def find_existing_paths(self, storage_tier: StorageTier, paths: list[str]) -> set[str]:
        return set(_existing_paths(storage_tier, paths))


class DjangoORMAdapter(StorageAdapter):
    """Records as PhysicalFile rows, through Django's async ORM; ``as_sync()`` is the sync face."""

    def __init__(self) -> None:
        self._sync = DjangoORMSyncAdapter()
        self._inserts = AsyncInserts()

    def as_sync(self) -> SyncStorageAdapter:
        return self._sync

    async def create(self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None) -> PhysicalFile:
        return await self._insert(_new_row(storage_tier, filename, path, hot_until))

    async def create_stored(
        self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None, stored: ObjectInfo
    ) -> PhysicalFile:
        return await self._insert(_new_row(storage_tier, filename, path, hot_until, stored))

    async def _insert(self, row: dict[str, Any]) -> PhysicalFile:
        # Rows created at the same moment by other tasks share one INSERT (see inserts.py).
        record = await self._inserts.create(row)
        # The async ORM autocommits (no transaction is open here): the row is committed.
        await signals.file_uploaded.asend(sender=PhysicalFile, file=record)
        return record

    async def find_by_id(self, id: FileId) -> PhysicalFile | None:
        return await PhysicalFile.objects.filter(pk=id).afirst()

    async def update(self, id: FileId, storage_tier: Any = UNSET, path: Any = UNSET, hot_until: Any = UNSET) -> PhysicalFile:
        before = await PhysicalFile.objects.aget(pk=id)
        await PhysicalFile.objects.filter(pk=id).aupdate(**_changes(storage_tier, path, hot_until))
        after = await PhysicalFile.objects.aget(pk=id)
        for signal, extra in _update_signals(before, after):
            await signal.asend(sender=PhysicalFile, file=after, **extra)
        return after

    async def update_if(
        self,
        id: FileId,
        expected_tier: StorageTier,
        expected_path: str,
        storage_tier: Any = UNSET,
        path: Any = UNSET,
        hot_until: Any = UNSET,
    ) -> PhysicalFile | None:
        before = await _where(id, expected_tier, expected_path).afirst()
        if before is None:
            return None
        changes = _changes(storage_tier, path, hot_until)
        # The UPDATE re-checks the location, so of two racing moves exactly one commits.
        if not await _where(id, expected_tier, expected_path).aupdate(**changes):
            return None
        after = _applied(before, changes)
        for signal, extra in _update_signals(before, after):
            await signal.asend(sender=PhysicalFile, file=after, **extra)
        return after

    async def update_many_if(self, moves: list[Move]) -> list[PhysicalFile | None]:
        # One transaction with row locks: the sync face's, on the ORM's thread.
        return await sync_to_async(self._sync.update_many_if)(moves)

    async def delete(self, id: FileId) -> None:
        record = await PhysicalFile.objects.filter(pk=id).afirst()
        if record is None:
            return
        count, _ = await PhysicalFile.objects.filter(pk=id).adelete()
        _forget_names()
        if count:
            await signals.file_deleted.asend(sender=PhysicalFile, file=record)

    async def find_expired_hot_files(self) -> list[PhysicalFile]:
        return [f async for f in PhysicalFile.objects.expired()]

    async def find_all(self) -> list[PhysicalFile]:
        return [f async for f in PhysicalFile.objects.all()]

    async def find_existing_paths(self, storage_tier: StorageTier, paths: list[str]) -> set[str]:
        return {p async for p in _existing_paths(storage_tier, paths)}
