"""StorageAdapter (async, upstream's contract), its sync twin, and the public InMemoryAdapter."""

from __future__ import annotations

import abc
import asyncio
import itertools
import threading
from collections.abc import Callable, Coroutine, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from .types import UNSET, FileId, ObjectInfo, PhysicalFile, StorageTier

__all__ = ["ClaimKey", "InMemoryAdapter", "LoopBridgeAdapter", "Move", "StorageAdapter", "SyncStorageAdapter"]

T = TypeVar("T")

#: One conditional update: a record as read, and the changes (as ``update`` takes them) to commit on it
#: while its row is still at the record's tier and path.
Move = tuple[PhysicalFile, dict[str, Any]]

#: One object key a writer claims before it writes or deletes it: (tier, key).
ClaimKey = tuple[StorageTier, str]


class StorageAdapter(abc.ABC):
    """Where FileManager keeps PhysicalFile records: bring your own database.

    An adapter written as upstream's README shows keeps working. In ``update``, an
    argument left out means "unchanged" and ``None`` for ``hot_until`` means "clear";
    an adapter that treats ``None`` as "not given" cannot clear ``hot_until``, and
    FileManager logs a warning when that happens.
    """

    # -- a subclass must implement -------------------------------------------------

    @abc.abstractmethod
    async def create(self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None) -> PhysicalFile:
        """Create and return a record."""

    @abc.abstractmethod
    async def find_by_id(self, id: FileId) -> PhysicalFile | None:
        """Return the record with ``id``, or None."""

    @abc.abstractmethod
    async def update(self, id: FileId, storage_tier: Any = UNSET, path: Any = UNSET, hot_until: Any = UNSET) -> PhysicalFile:
        """Change the given fields of record ``id`` and return it; ``hot_until=None`` clears it."""

    @abc.abstractmethod
    async def delete(self, id: FileId) -> None:
        """Delete record ``id``."""

    @abc.abstractmethod
    async def find_expired_hot_files(self) -> list[PhysicalFile]:
        """Return HOT records whose ``hot_until`` has passed."""

    @abc.abstractmethod
    async def find_all(self) -> list[PhysicalFile]:
        """Return every record."""

    # -- optional ------------------------------------------------------------------

    async def find_existing_paths(self, storage_tier: StorageTier, paths: list[str]) -> set[str]:
        """Return which of ``paths`` have a record in ``storage_tier`` (one query per page of a listing).

        The default raises NotImplementedError; FileManager then falls back to one ``find_all``.
        """
        raise NotImplementedError

    async def create_stored(
        self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None, stored: ObjectInfo
    ) -> PhysicalFile:
        """Create a record as ``create`` does, for the object just stored; ``stored`` is what S3 answered.

        An adapter whose records keep ``size`` and ``etag`` (the Django model does) lets later
        moves copy without reading the object first: the copy is pinned to the recorded ETag and
        verified against it. The default raises NotImplementedError; FileManager then calls ``create``.
        """
        raise NotImplementedError

    async def update_if(
        self,
        id: FileId,
        expected_tier: StorageTier,
        expected_path: str,
        storage_tier: Any = UNSET,
        path: Any = UNSET,
        hot_until: Any = UNSET,
    ) -> PhysicalFile | None:
        """Update as ``update`` does, only while the record is at (``expected_tier``, ``expected_path``).

        Return the updated record, or None (changing nothing) when the record is gone or
        somewhere else. Moves commit through it, so two racing moves of one file cannot both
        win. The default raises NotImplementedError; FileManager then falls back to ``update``.
        """
        raise NotImplementedError

    async def update_many_if(self, moves: list[Move]) -> list[PhysicalFile | None]:
        """Apply ``update_if`` to each (record, changes) at the record's tier and path, in one transaction if you can.

        Return the updated record or None for each, in order. Archival commits a whole batch
        through it. The default raises NotImplementedError; FileManager then commits one by one.
        """
        raise NotImplementedError

    async def claim_keys(self, owner: str, keys: list[ClaimKey], seconds: float) -> dict[ClaimKey, str]:
        """Claim each free (or expired, or already ``owner``'s) key for ``owner`` for ``seconds``.

        Return the keys held by another writer, with their holder; the other keys are now
        ``owner``'s (the caller releases them if it cannot use a partial claim). Every writer of
        an object (moves, deletes, archival, orphan sweeps, adoption, repairs) claims the keys it
        writes or deletes first, so two writers never meet on one key; a claim expires, so a
        killed writer blocks nobody for long. The default raises NotImplementedError: FileManager
        then relies on its compare-and-set commits alone (see docs/architecture.md).
        """
        raise NotImplementedError

    async def release_keys(self, owner: str, keys: list[ClaimKey]) -> None:
        """Release ``owner``'s claims on ``keys`` (keys claimed by others are left alone)."""
        raise NotImplementedError

    async def run_after_commit(self, work: Callable[[], object]) -> bool:
        """Inside an open transaction, run ``work`` once it commits and return True; False outside one.

        Optional; see SyncStorageAdapter.run_after_commit.
        """
        raise NotImplementedError

    def as_sync(self) -> SyncStorageAdapter:
        """Return the sync face of this adapter; the default runs each coroutine on a private loop."""
        return LoopBridgeAdapter(self)


class SyncStorageAdapter(abc.ABC):
    """The same contract as StorageAdapter, for sync callers (Django views, Celery, commands)."""

    # -- a subclass must implement -------------------------------------------------

    @abc.abstractmethod
    def create(self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None) -> PhysicalFile:
        """Create and return a record."""

    @abc.abstractmethod
    def find_by_id(self, id: FileId) -> PhysicalFile | None:
        """Return the record with ``id``, or None."""

    @abc.abstractmethod
    def update(self, id: FileId, storage_tier: Any = UNSET, path: Any = UNSET, hot_until: Any = UNSET) -> PhysicalFile:
        """Change the given fields of record ``id`` and return it; ``hot_until=None`` clears it."""

    @abc.abstractmethod
    def delete(self, id: FileId) -> None:
        """Delete record ``id``."""

    @abc.abstractmethod
    def find_expired_hot_files(self) -> list[PhysicalFile]:
        """Return HOT records whose ``hot_until`` has passed."""

    @abc.abstractmethod
    def find_all(self) -> list[PhysicalFile]:
        """Return every record."""

    def find_existing_paths(self, storage_tier: StorageTier, paths: list[str]) -> set[str]:
        """Return which of ``paths`` have a record in ``storage_tier``; optional."""
        raise NotImplementedError

    def create_stored(
        self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None, stored: ObjectInfo
    ) -> PhysicalFile:
        """``create``, for the object just stored, with what S3 answered (size, ETag); optional."""
        raise NotImplementedError

    def update_if(
        self,
        id: FileId,
        expected_tier: StorageTier,
        expected_path: str,
        storage_tier: Any = UNSET,
        path: Any = UNSET,
        hot_until: Any = UNSET,
    ) -> PhysicalFile | None:
        """Update only while the record is at (``expected_tier``, ``expected_path``), else return None; optional."""
        raise NotImplementedError

    def update_many_if(self, moves: list[Move]) -> list[PhysicalFile | None]:
        """``update_if`` for each (record, changes) at the record's tier and path, in order; optional."""
        raise NotImplementedError

    def claim_keys(self, owner: str, keys: list[ClaimKey], seconds: float) -> dict[ClaimKey, str]:
        """Claim the free keys for ``owner``; return the ones held by others, with their holder; optional."""
        raise NotImplementedError

    def release_keys(self, owner: str, keys: list[ClaimKey]) -> None:
        """Release ``owner``'s claims on ``keys``; optional."""
        raise NotImplementedError

    def run_after_commit(self, work: Callable[[], object]) -> bool:
        """Inside an open transaction, run ``work`` once it commits (never on rollback) and return True.

        Return False when no transaction is open: the caller then does the work at once. Deletes of
        objects (a deleted record's, a moved record's stale source) go through it, so that a rolled
        back transaction keeps the object its record points at again. Optional.
        """
        raise NotImplementedError


class LoopBridgeAdapter(SyncStorageAdapter):
    """Drive an async-only adapter from sync code on one private event loop thread."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    def __init__(self, adapter: StorageAdapter) -> None:
        self.adapter = adapter

    @classmethod
    def _get_loop(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None or cls._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="s3strata-adapter-loop", daemon=True).start()
                cls._loop = loop
            return cls._loop

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._get_loop()).result()

    def create(self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None) -> PhysicalFile:
        return self._call(self.adapter.create(storage_tier=storage_tier, filename=filename, path=path, hot_until=hot_until))

    def find_by_id(self, id: FileId) -> PhysicalFile | None:
        return self._call(self.adapter.find_by_id(id))

    def update(self, id: FileId, storage_tier: Any = UNSET, path: Any = UNSET, hot_until: Any = UNSET) -> PhysicalFile:
        given = {k: v for k, v in (("storage_tier", storage_tier), ("path", path), ("hot_until", hot_until)) if v is not UNSET}
        return self._call(self.adapter.update(id, **given))

    def delete(self, id: FileId) -> None:
        self._call(self.adapter.delete(id))

    def find_expired_hot_files(self) -> list[PhysicalFile]:
        return self._call(self.adapter.find_expired_hot_files())

    def find_all(self) -> list[PhysicalFile]:
        return self._call(self.adapter.find_all())

    def find_existing_paths(self, storage_tier: StorageTier, paths: list[str]) -> set[str]:
        method = getattr(self.adapter, "find_existing_paths", None)
        if method is None:
            raise NotImplementedError
        result: set[str] = self._call(method(storage_tier, paths))
        return result

    def update_if(
        self,
        id: FileId,
        expected_tier: StorageTier,
        expected_path: str,
        storage_tier: Any = UNSET,
        path: Any = UNSET,
        hot_until: Any = UNSET,
    ) -> PhysicalFile | None:
        given = {k: v for k, v in (("storage_tier", storage_tier), ("path", path), ("hot_until", hot_until)) if v is not UNSET}
        record: PhysicalFile | None = self._call(self.adapter.update_if(id, expected_tier, expected_path, **given))
        return record

    def update_many_if(self, moves: list[Move]) -> list[PhysicalFile | None]:
        method = getattr(self.adapter, "update_many_if", None)
        if method is None:
            raise NotImplementedError
        records: list[PhysicalFile | None] = self._call(method(moves))
        return records

    def claim_keys(self, owner: str, keys: list[ClaimKey], seconds: float) -> dict[ClaimKey, str]:
        held: dict[ClaimKey, str] = self._call(self.adapter.claim_keys(owner, keys, seconds))
        return held

    def release_keys(self, owner: str, keys: list[ClaimKey]) -> None:
        self._call(self.adapter.release_keys(owner, keys))

    def create_stored(
        self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None, stored: ObjectInfo
    ) -> PhysicalFile:
        method = getattr(self.adapter, "create_stored", None)
        if method is None:
            raise NotImplementedError
        record: PhysicalFile = self._call(method(storage_tier, filename, path, hot_until, stored))
        return record


class _InMemoryState:
    """Records of an InMemoryAdapter, guarded by a lock so both faces are thread-safe."""

    def __init__(self) -> None:
        self.files: dict[FileId, PhysicalFile] = {}
        self.claims: dict[ClaimKey, tuple[str, datetime]] = {}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()


class InMemorySyncAdapter(SyncStorageAdapter):
    """The sync face of InMemoryAdapter (shares its records)."""

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
            return _apply(record, storage_tier, path, hot_until)

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
            return _apply(record, storage_tier, path, hot_until)

    def update_many_if(self, moves: list[Move]) -> list[PhysicalFile | None]:
        return [self.update_if(r.id, StorageTier(r.storage_tier), r.path, **changes) for r, changes in moves]

    def delete(self, id: FileId) -> None:
        with self._state.lock:
            self._state.files.pop(_key(id), None)

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
        wanted = set(paths)
        with self._state.lock:
            return {f.path for f in self._state.files.values() if f.storage_tier == storage_tier and f.path in wanted}

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


class InMemoryAdapter(StorageAdapter):
    """A supported in-memory StorageAdapter, for tests, demos and scripts (thread-safe)."""

    def __init__(self) -> None:
        self._sync = InMemorySyncAdapter()

    @property
    def files(self) -> dict[FileId, PhysicalFile]:
        """Return the records by id (the live dict)."""
        return self._sync.files

    def as_sync(self) -> SyncStorageAdapter:
        return self._sync

    async def create(self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None) -> PhysicalFile:
        return self._sync.create(storage_tier, filename, path, hot_until)

    async def find_by_id(self, id: FileId) -> PhysicalFile | None:
        return self._sync.find_by_id(id)

    async def update(self, id: FileId, storage_tier: Any = UNSET, path: Any = UNSET, hot_until: Any = UNSET) -> PhysicalFile:
        return self._sync.update(id, storage_tier=storage_tier, path=path, hot_until=hot_until)

    async def update_if(
        self,
        id: FileId,
        expected_tier: StorageTier,
        expected_path: str,
        storage_tier: Any = UNSET,
        path: Any = UNSET,
        hot_until: Any = UNSET,
    ) -> PhysicalFile | None:
        return self._sync.update_if(id, expected_tier, expected_path, storage_tier=storage_tier, path=path, hot_until=hot_until)

    async def update_many_if(self, moves: list[Move]) -> list[PhysicalFile | None]:
        return self._sync.update_many_if(moves)

    async def delete(self, id: FileId) -> None:
        self._sync.delete(id)

    async def find_expired_hot_files(self) -> list[PhysicalFile]:
        return self._sync.find_expired_hot_files()

    async def find_all(self) -> list[PhysicalFile]:
        return self._sync.find_all()

    async def find_existing_paths(self, storage_tier: StorageTier, paths: list[str]) -> set[str]:
        return self._sync.find_existing_paths(storage_tier, paths)

    async def claim_keys(self, owner: str, keys: list[ClaimKey], seconds: float) -> dict[ClaimKey, str]:
        return self._sync.claim_keys(owner, keys, seconds)

    async def release_keys(self, owner: str, keys: list[ClaimKey]) -> None:
        self._sync.release_keys(owner, keys)


def _key(id: FileId) -> FileId:
    if isinstance(id, str) and id.isdigit():
        return int(id)
    return id


def _apply(record: PhysicalFile, storage_tier: Any, path: Any, hot_until: Any) -> PhysicalFile:
    if storage_tier is not UNSET:
        record.storage_tier = StorageTier(storage_tier)
    if path is not UNSET:
        record.path = path
    if hot_until is not UNSET:
        record.hot_until = hot_until
    record.updated_at = datetime.now(UTC)
    return _copy(record)


def _copy(record: PhysicalFile) -> PhysicalFile:
    return PhysicalFile(
        record.id, record.storage_tier, record.filename, record.path, record.hot_until, record.created_at, record.updated_at
    )


def paths_of(records: Iterable[PhysicalFile]) -> set[tuple[StorageTier, str]]:
    """Return the (tier, path) pairs of ``records``."""
    return {(StorageTier(r.storage_tier), r.path) for r in records}
