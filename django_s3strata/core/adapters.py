"""StorageAdapter (async, upstream's contract), its sync twin, and the public InMemoryAdapter."""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from .exceptions import ConfigurationError
from .types import UNSET, FileId, ObjectInfo, PhysicalFile, RestoreFields, StorageTier

__all__ = [
    "AdapterFeatures",
    "ClaimKey",
    "LoopBridgeAdapter",
    "Move",
    "StorageAdapter",
    "SyncBackedAdapter",
    "SyncStorageAdapter",
    "features_of",
]

T = TypeVar("T")

#: One conditional update: a record as read, and the changes (as ``update`` takes them) to commit on it
#: while its row is still at the record's tier and path.
Move = tuple[PhysicalFile, dict[str, Any]]

#: One object key a writer claims before it writes or deletes it: (tier, key).
ClaimKey = tuple[StorageTier, str]


@dataclass(frozen=True)
class AdapterFeatures:
    """Which optional methods an adapter has, declared once (as Django's ``connection.features``).

    FileManager reads them when it is built and never calls an optional method an adapter has
    not declared; a NotImplementedError raised inside a declared method is a real error. Each
    field is named after the method (``claims`` covers ``claim_keys`` and ``release_keys``).
    """

    find_existing_paths: bool = False
    create_stored: bool = False
    update_if: bool = False
    update_many_if: bool = False
    claims: bool = False
    run_after_commit: bool = False
    record_restore: bool = False
    #: The records keep the object's ETag, and ``update_many_if`` takes an ``etag`` change: a move
    #: records its copy's ETag (with SSE-KMS or in parts it is not the source's). Declared only,
    #: never guessed from the methods an adapter overrides.
    records_etag: bool = False


#: The methods behind each feature.
FEATURE_METHODS: dict[str, tuple[str, ...]] = {
    "find_existing_paths": ("find_existing_paths",),
    "create_stored": ("create_stored",),
    "update_if": ("update_if",),
    "update_many_if": ("update_many_if",),
    "claims": ("claim_keys", "release_keys"),
    "run_after_commit": ("run_after_commit",),
    "record_restore": ("record_restore",),
}


def features_of(adapter: StorageAdapter | SyncStorageAdapter) -> AdapterFeatures:
    """Return the adapter's declared features; for one that declares none, those whose methods it overrides.

    Raise ConfigurationError when a declared feature's method is not implemented.
    """
    base: type | None = (
        StorageAdapter
        if isinstance(adapter, StorageAdapter)
        else SyncStorageAdapter
        if isinstance(adapter, SyncStorageAdapter)
        else None  # an adapter that subclasses neither: the methods it has
    )
    declared: AdapterFeatures | None = getattr(adapter, "features", None)

    def overrides(name: str) -> bool:
        if base is None:
            return callable(getattr(adapter, name, None))
        return getattr(type(adapter), name, None) is not getattr(base, name, None)

    if declared is None:
        return AdapterFeatures(**{f: all(map(overrides, names)) for f, names in FEATURE_METHODS.items()})
    if declared.records_etag and not declared.update_many_if:
        raise ConfigurationError(f"{type(adapter).__name__} declares 'records_etag': it takes the ETag in update_many_if.")
    for feature, names in FEATURE_METHODS.items():
        missing = [n for n in names if not overrides(n)]
        if getattr(declared, feature) and missing:
            raise ConfigurationError(
                f"{type(adapter).__name__} declares the feature {feature!r} but does not implement {', '.join(missing)}."
            )
    return declared


class StorageAdapter(abc.ABC):
    """Where FileManager keeps PhysicalFile records: bring your own database.

    An adapter written as upstream's README shows keeps working. In ``update``, an
    argument left out means "unchanged" and ``None`` for ``hot_until`` means "clear";
    an adapter that treats ``None`` as "not given" cannot clear ``hot_until``, and
    FileManager logs a warning when that happens.

    The optional methods below are called only when the adapter declares them in
    ``features`` (an adapter that declares nothing gets the ones it overrides); each says
    what FileManager does without it. Write an adapter once, sync (SyncStorageAdapter), and
    derive this async face with SyncBackedAdapter, or write this one and let ``as_sync()``
    bridge it.
    """

    #: The optional methods this adapter has; None: those its class overrides.
    features: ClassVar[AdapterFeatures | None] = None

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

    # -- optional (declare them in ``features``) -----------------------------------

    async def find_existing_paths(self, storage_tier: StorageTier, paths: list[str]) -> set[str]:
        """Return which of ``paths`` have a record in ``storage_tier`` (one query per page of a listing).

        Without it, FileManager reads every record once (``find_all``) per orphan scan.
        """
        raise NotImplementedError

    async def create_stored(
        self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None, stored: ObjectInfo
    ) -> PhysicalFile:
        """Create a record as ``create`` does, for the object just stored; ``stored`` is what S3 answered.

        An adapter whose records keep ``size`` and ``etag`` (the Django model does) lets later
        moves copy without reading the object first: the copy is pinned to the recorded ETag and
        verified against it. Without it, FileManager calls ``create``.
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
        win. Without it, FileManager commits with ``update``.
        """
        raise NotImplementedError

    async def update_many_if(self, moves: list[Move]) -> list[PhysicalFile | None]:
        """Apply ``update_if`` to each (record, changes) at the record's tier and path, in one transaction if you can.

        Return the updated record or None for each, in order. Archival commits a whole batch
        through it. Without it, FileManager commits one by one.
        """
        raise NotImplementedError

    async def claim_keys(self, owner: str, keys: list[ClaimKey], seconds: float) -> dict[ClaimKey, str]:
        """Claim each free (or expired, or already ``owner``'s) key for ``owner`` for ``seconds``.

        Return the keys held by another writer, with their holder; the other keys are now
        ``owner``'s (the caller releases them if it cannot use a partial claim). Every writer of
        an object (moves, deletes, archival, orphan sweeps, adoption, repairs) claims the keys it
        writes or deletes first, so two writers never meet on one key; a claim expires, so a
        killed writer blocks nobody for long. Feature ``claims``, with ``release_keys``. Without
        it, FileManager relies on its compare-and-set commits alone (see docs/architecture.md).
        """
        raise NotImplementedError

    async def release_keys(self, owner: str, keys: list[ClaimKey]) -> None:
        """Release ``owner``'s claims on ``keys`` (keys claimed by others are left alone)."""
        raise NotImplementedError

    async def run_after_commit(self, work: Callable[[], object]) -> bool:
        """Inside an open transaction, run ``work`` once it commits (never on rollback) and return True.

        Return False when no transaction is open: the caller then does the work at once. Deletes of
        objects (a deleted record's, a moved record's stale source) go through it, so that a rolled
        back transaction keeps the object its record points at again. Without it, they run at once.
        """
        raise NotImplementedError

    async def record_restore(
        self, id: FileId, expected_tier: StorageTier, expected_path: str, fields: RestoreFields
    ) -> PhysicalFile | None:
        """Store what is known of an archived object's restore on record ``id`` (the keys given; None clears one).

        Only while the record is at (``expected_tier``, ``expected_path``): return the updated record,
        or None when it is gone or moved. With it, list pages know an archived
        file's state without asking S3, and ``set_tier(..., restore=True)`` records a move to HOT that
        completes once the restore has; without it, FileManager asks S3 each time and such a move
        must be asked for again after the restore (docs/archive.md).
        """
        raise NotImplementedError

    def as_sync(self) -> SyncStorageAdapter:
        """Return the sync face of this adapter; the default runs each coroutine on a private loop."""
        return LoopBridgeAdapter(self)


class SyncStorageAdapter(abc.ABC):
    """StorageAdapter's contract for sync callers (Django views, Celery, commands): the same methods, not awaited.

    See StorageAdapter for what each method does; optional ones are declared in ``features``.
    """

    features: ClassVar[AdapterFeatures | None] = None

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

    # -- optional (declare them in ``features``) -----------------------------------

    def find_existing_paths(self, storage_tier: StorageTier, paths: list[str]) -> set[str]:
        """Return which of ``paths`` have a record in ``storage_tier``."""
        raise NotImplementedError

    def create_stored(
        self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None, stored: ObjectInfo
    ) -> PhysicalFile:
        """``create``, for the object just stored, with what S3 answered (size, ETag)."""
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
        """Update only while the record is at (``expected_tier``, ``expected_path``), else return None."""
        raise NotImplementedError

    def update_many_if(self, moves: list[Move]) -> list[PhysicalFile | None]:
        """``update_if`` for each (record, changes) at the record's tier and path, in order."""
        raise NotImplementedError

    def claim_keys(self, owner: str, keys: list[ClaimKey], seconds: float) -> dict[ClaimKey, str]:
        """Claim the free keys for ``owner``; return the ones held by others, with their holder."""
        raise NotImplementedError

    def release_keys(self, owner: str, keys: list[ClaimKey]) -> None:
        """Release ``owner``'s claims on ``keys``."""
        raise NotImplementedError

    def run_after_commit(self, work: Callable[[], object]) -> bool:
        """Inside an open transaction, run ``work`` once it commits and return True; False outside one."""
        raise NotImplementedError

    def record_restore(
        self, id: FileId, expected_tier: StorageTier, expected_path: str, fields: RestoreFields
    ) -> PhysicalFile | None:
        """Store the restore state ``fields`` on record ``id`` while it is at its expected location; else None."""
        raise NotImplementedError


def _given(**fields: Any) -> dict[str, Any]:
    """Return the fields an ``update`` was given (UNSET ones left out, so an upstream adapter's defaults apply)."""
    return {name: value for name, value in fields.items() if value is not UNSET}


class SyncBackedAdapter(StorageAdapter):
    """The async face of a SyncStorageAdapter: each call runs the sync method through ``_call``.

    ``_call`` runs it inline (right for an adapter that never blocks, like InMemoryAdapter);
    an adapter over blocking I/O overrides it to hop to a thread (the Django adapter uses
    ``sync_to_async``). The contract is implemented once, in the sync adapter.
    """

    def __init__(self, sync_adapter: SyncStorageAdapter) -> None:
        self.sync_adapter = sync_adapter

    @property
    def features(self) -> AdapterFeatures:  # type: ignore[override]
        # The sync adapter's, plus any optional method a subclass of this class writes itself.
        found = features_of(self.sync_adapter)
        own = {
            feature: True
            for feature, names in FEATURE_METHODS.items()
            if all(getattr(type(self), n) is not getattr(SyncBackedAdapter, n) for n in names)
        }
        return dataclasses.replace(found, **own) if own else found

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return fn(*args, **kwargs)

    def as_sync(self) -> SyncStorageAdapter:
        return self.sync_adapter

    async def create(self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None) -> PhysicalFile:
        return await self._call(self.sync_adapter.create, storage_tier, filename, path, hot_until)

    async def create_stored(
        self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None, stored: ObjectInfo
    ) -> PhysicalFile:
        return await self._call(self.sync_adapter.create_stored, storage_tier, filename, path, hot_until, stored)

    async def find_by_id(self, id: FileId) -> PhysicalFile | None:
        return await self._call(self.sync_adapter.find_by_id, id)

    async def update(self, id: FileId, storage_tier: Any = UNSET, path: Any = UNSET, hot_until: Any = UNSET) -> PhysicalFile:
        given = _given(storage_tier=storage_tier, path=path, hot_until=hot_until)
        return await self._call(self.sync_adapter.update, id, **given)

    async def update_if(
        self,
        id: FileId,
        expected_tier: StorageTier,
        expected_path: str,
        storage_tier: Any = UNSET,
        path: Any = UNSET,
        hot_until: Any = UNSET,
    ) -> PhysicalFile | None:
        given = _given(storage_tier=storage_tier, path=path, hot_until=hot_until)
        return await self._call(self.sync_adapter.update_if, id, expected_tier, expected_path, **given)

    async def update_many_if(self, moves: list[Move]) -> list[PhysicalFile | None]:
        return await self._call(self.sync_adapter.update_many_if, moves)

    async def delete(self, id: FileId) -> None:
        await self._call(self.sync_adapter.delete, id)

    async def find_expired_hot_files(self) -> list[PhysicalFile]:
        return await self._call(self.sync_adapter.find_expired_hot_files)

    async def find_all(self) -> list[PhysicalFile]:
        return await self._call(self.sync_adapter.find_all)

    async def find_existing_paths(self, storage_tier: StorageTier, paths: list[str]) -> set[str]:
        return await self._call(self.sync_adapter.find_existing_paths, storage_tier, paths)

    async def claim_keys(self, owner: str, keys: list[ClaimKey], seconds: float) -> dict[ClaimKey, str]:
        return await self._call(self.sync_adapter.claim_keys, owner, keys, seconds)

    async def release_keys(self, owner: str, keys: list[ClaimKey]) -> None:
        await self._call(self.sync_adapter.release_keys, owner, keys)

    async def run_after_commit(self, work: Callable[[], object]) -> bool:
        return await self._call(self.sync_adapter.run_after_commit, work)

    async def record_restore(
        self, id: FileId, expected_tier: StorageTier, expected_path: str, fields: RestoreFields
    ) -> PhysicalFile | None:
        return await self._call(self.sync_adapter.record_restore, id, expected_tier, expected_path, fields)


class LoopBridgeAdapter(SyncStorageAdapter):
    """The sync face of an async-only adapter: each call runs its coroutine on one private event loop thread."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    def __init__(self, adapter: StorageAdapter) -> None:
        self.adapter = adapter

    @property
    def features(self) -> AdapterFeatures:  # type: ignore[override]
        # Never run_after_commit: work the adapter ran on commit would run on the bridge's own loop
        # thread and, going back through this bridge to the same loop, wait for itself.
        return dataclasses.replace(features_of(self.adapter), run_after_commit=False)

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

    def create_stored(
        self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None, stored: ObjectInfo
    ) -> PhysicalFile:
        return self._call(self.adapter.create_stored(storage_tier, filename, path, hot_until, stored))

    def find_by_id(self, id: FileId) -> PhysicalFile | None:
        return self._call(self.adapter.find_by_id(id))

    def update(self, id: FileId, storage_tier: Any = UNSET, path: Any = UNSET, hot_until: Any = UNSET) -> PhysicalFile:
        return self._call(self.adapter.update(id, **_given(storage_tier=storage_tier, path=path, hot_until=hot_until)))

    def update_if(
        self,
        id: FileId,
        expected_tier: StorageTier,
        expected_path: str,
        storage_tier: Any = UNSET,
        path: Any = UNSET,
        hot_until: Any = UNSET,
    ) -> PhysicalFile | None:
        given = _given(storage_tier=storage_tier, path=path, hot_until=hot_until)
        return self._call(self.adapter.update_if(id, expected_tier, expected_path, **given))

    def update_many_if(self, moves: list[Move]) -> list[PhysicalFile | None]:
        return self._call(self.adapter.update_many_if(moves))

    def delete(self, id: FileId) -> None:
        self._call(self.adapter.delete(id))

    def find_expired_hot_files(self) -> list[PhysicalFile]:
        return self._call(self.adapter.find_expired_hot_files())

    def find_all(self) -> list[PhysicalFile]:
        return self._call(self.adapter.find_all())

    def find_existing_paths(self, storage_tier: StorageTier, paths: list[str]) -> set[str]:
        return self._call(self.adapter.find_existing_paths(storage_tier, paths))

    def claim_keys(self, owner: str, keys: list[ClaimKey], seconds: float) -> dict[ClaimKey, str]:
        return self._call(self.adapter.claim_keys(owner, keys, seconds))

    def release_keys(self, owner: str, keys: list[ClaimKey]) -> None:
        self._call(self.adapter.release_keys(owner, keys))

    def run_after_commit(self, work: Callable[[], object]) -> bool:
        return self._call(self.adapter.run_after_commit(work))

    def record_restore(
        self, id: FileId, expected_tier: StorageTier, expected_path: str, fields: RestoreFields
    ) -> PhysicalFile | None:
        return self._call(self.adapter.record_restore(id, expected_tier, expected_path, fields))
