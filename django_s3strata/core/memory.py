"""InMemoryAdapter: records in a dict, for tests, demos and scripts; written once (sync), its async face derived."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from .adapters import AdapterFeatures, ClaimKey, Move, SyncBackedAdapter, SyncStorageAdapter
from .types import UNSET, FileId, PhysicalFile, StorageTier

__all__ = ["InMemoryAdapter", "InMemorySyncAdapter"]


class _InMemoryState:
    """Records of an InMemoryAdapter, guarded by a lock so both faces are thread-safe."""

    def __init__(self) -> None:
        self.files: dict[FileId, PhysicalFile] = {}
        #: How many records each (tier, path) has: an orphan scan's lookup is one dict probe per key.
        self.paths: Counter[tuple[StorageTier, str]] = Counter()
        self.claims: dict[ClaimKey, tuple[str, datetime]] = {}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()


class InMemorySyncAdapter(SyncStorageAdapter):
    """Records in a dict, for sync callers; InMemoryAdapter is its async face (they share the records)."""

    features = AdapterFeatures(find_existing_paths=True, update_if=True, update_many_if=True, claims=True)

    def __init__(self, state: _InMemoryState | None = None) -> None:
        self._state = state or _InMemoryState()

    @property
    def files(self) -> dict[FileId, PhysicalFile]:
        """Return the records by id (the live dict)."""
        return self._state.files

    def create(self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None) -> PhysicalFile:
        now = datetime.now(UTC)
        with self._state.lock:
            file_id = next(self._state.ids)
            record = PhysicalFile(file_id, StorageTier(storage_tier), filename, path, hot_until, now, now)
            self._state.files[file_id] = record
            self._state.paths[(StorageTier(storage_tier), path)] += 1
            return _copy(record)

    def find_by_id(self, id: FileId) -> PhysicalFile | None:
        with self._state.lock:
            record = self._state.files.get(_key(id))
            return _copy(record) if record else None

    def update(self, id: FileId, storage_tier: Any = UNSET, path: Any = UNSET, hot_until: Any = UNSET) -> PhysicalFile:
        with self._state.lock:
            record = self._state.files.get(_key(id))
            if record is None:
                raise KeyError(f"No PhysicalFile with id {id!r}")
            return _apply(self._state, record, storage_tier, path, hot_until)

    def update_if(
        self,
        id: FileId,
        expected_tier: StorageTier,
        expected_path: str,
        storage_tier: Any = UNSET,
        path: Any = UNSET,
        hot_until: Any = UNSET,
    ) -> PhysicalFile | None:
        with self._state.lock:
            record = self._state.files.get(_key(id))
            if record is None or record.storage_tier != StorageTier(expected_tier) or record.path != expected_path:
                return None
            return _apply(self._state, record, storage_tier, path, hot_until)

    def update_many_if(self, moves: list[Move]) -> list[PhysicalFile | None]:
        return [self.update_if(r.id, StorageTier(r.storage_tier), r.path, **changes) for r, changes in moves]

    def delete(self, id: FileId) -> None:
        with self._state.lock:
            record = self._state.files.pop(_key(id), None)
            if record is not None:
                _forget(self._state, record)

    def find_expired_hot_files(self) -> list[PhysicalFile]:
        now = datetime.now(UTC)
        with self._state.lock:
            return [
                _copy(f)
                for f in self._state.files.values()
                if f.storage_tier == StorageTier.HOT and f.hot_until is not None and f.hot_until <= now
            ]

    def find_all(self) -> list[PhysicalFile]:
        with self._state.lock:
            return [_copy(f) for f in self._state.files.values()]

    def find_existing_paths(self, storage_tier: StorageTier, paths: list[str]) -> set[str]:
        tier = StorageTier(storage_tier)
        with self._state.lock:
            known = self._state.paths
            return {p for p in paths if (tier, p) in known}

    def claim_keys(self, owner: str, keys: list[ClaimKey], seconds: float) -> dict[ClaimKey, str]:
        now = datetime.now(UTC)
        until = now + timedelta(seconds=seconds)
        held: dict[ClaimKey, str] = {}
        with self._state.lock:
            for tier, key in keys:
                name = (StorageTier(tier), key)
                holder = self._state.claims.get(name)
                if holder is not None and holder[0] != owner and holder[1] > now:
                    held[name] = holder[0]
                else:
                    self._state.claims[name] = (owner, until)
        return held

    def release_keys(self, owner: str, keys: list[ClaimKey]) -> None:
        with self._state.lock:
            for tier, key in keys:
                name = (StorageTier(tier), key)
                holder = self._state.claims.get(name)
                if holder is not None and holder[0] == owner:
                    del self._state.claims[name]


class InMemoryAdapter(SyncBackedAdapter):
    """A supported in-memory StorageAdapter, for tests, demos and scripts (thread-safe)."""

    sync_adapter: InMemorySyncAdapter

    def __init__(self) -> None:
        super().__init__(InMemorySyncAdapter())

    @property
    def files(self) -> dict[FileId, PhysicalFile]:
        """Return the records by id (the live dict)."""
        return self.sync_adapter.files


def _key(id: FileId) -> FileId:
    if isinstance(id, str) and id.isdigit():
        return int(id)
    return id


def _forget(state: _InMemoryState, record: PhysicalFile) -> None:
    name = (StorageTier(record.storage_tier), record.path)
    state.paths[name] -= 1
    if state.paths[name] <= 0:
        del state.paths[name]


def _apply(state: _InMemoryState, record: PhysicalFile, storage_tier: Any, path: Any, hot_until: Any) -> PhysicalFile:
    _forget(state, record)
    if storage_tier is not UNSET:
        record.storage_tier = StorageTier(storage_tier)
    if path is not UNSET:
        record.path = path
    if hot_until is not UNSET:
        record.hot_until = hot_until
    record.updated_at = datetime.now(UTC)
    state.paths[(StorageTier(record.storage_tier), record.path)] += 1
    return _copy(record)


def _copy(record: PhysicalFile) -> PhysicalFile:
    return PhysicalFile(
        record.id, record.storage_tier, record.filename, record.path, record.hot_until, record.created_at, record.updated_at
    )
