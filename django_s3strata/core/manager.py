"""FileManager: upstream's async API, its sync twin, and the one implementation both run.

Each operation is written once, as a generator that yields the steps it needs (an S3
call or an adapter call) and receives their results. ``FileManager`` drives it with
S3 calls on a thread pool and awaited adapter calls, so nothing blocks the event
loop; ``SyncFileManager`` drives the same generator inline with a sync adapter, with
no event loop at all. URL building is pure CPU and runs inline on both faces.

The move protocol (``set_tier``, ``set_visibility``, archival): claim the source and
destination keys, copy, verify, commit the record (compare-and-set on its location), delete
the source, release the claims. Every writer of an object (moves, deletes, archival, the
orphan sweep, adoption, verify's repair) claims the keys it writes or deletes first, so two
writers never meet on one key; a cleanup or a stale-source delete runs only under its claim
and only when no record points at that key. A failure before the commit leaves the record
and the source as they were and removes the copy; a failure after it leaves a stale source
copy, which is an orphan (a tier and key with no record) that the orphan sweep finds.

The drivers close an operation's generator when they stop early (cancellation, interrupt),
and the async API runs mutating operations shielded from the caller's cancellation, so a
move that has started finishes (or, if the loop itself goes away, leaves only an orphan and
claims that expire).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import datetime
from typing import IO, Any, TypeVar

from .adapters import AdapterFeatures, LoopBridgeAdapter, StorageAdapter, SyncStorageAdapter, features_of
from .archival import ArchiveClaim
from .claims import claim_owner
from .config import S3StrataAdvancedOptions, S3StrataConfig, parse_tier
from .keys import clean_filename
from .moves import Copied
from .objectstore import DataSource, ObjectStore
from .operations import Operations
from .orphans import OrphanOutcome, OrphanPolicy
from .restore import RestoreResult, RestoreStatus
from .steps import Op, drive_async, drive_sync
from .types import (
    AdoptOrphanOptions,
    AdoptOrphanResult,
    AllBucketObjects,
    DeleteOrphanOptions,
    DeleteOrphanResult,
    FileId,
    FileVisibility,
    GetUrlOptions,
    OrphanObject,
    PhysicalFile,
    RestoreOptions,
    SetHotDurationOptions,
    SetTierOptions,
    SetVisibilityOptions,
    StorageTier,
    UploadOptions,
)

__all__ = ["ArchiveClaim", "Copied", "FileManager", "OrphanOutcome", "OrphanPolicy", "SyncFileManager", "claim_owner"]


logger = logging.getLogger(__name__)
T = TypeVar("T")


def _bulk_threads(advanced: S3StrataAdvancedOptions) -> int:
    """Threads for the async API's bulk steps: ``async_bulk_concurrency``, else one per core (at least 2).

    Hashing and signing a large body keeps a thread on a core; sixteen of them at once leave the
    event loop waiting its turn (stalls of 80-150 ms were measured on two cores, 20-36 ms with two
    threads). Small requests, which mostly wait for the network, keep ``max_concurrency`` threads.
    """
    if advanced.async_bulk_concurrency is not None:
        return advanced.async_bulk_concurrency
    return max(2, min(advanced.max_concurrency, os.cpu_count() or 1))


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a shielded operation's outcome as seen: its caller may have been cancelled and never read it."""
    if not task.cancelled() and task.exception() is not None:
        logger.debug("s3strata: an operation whose caller went away failed: %s", task.exception())


def _log_failures(files: list[PhysicalFile], outcomes: list[PhysicalFile | Exception | None]) -> None:
    for file, outcome in zip(files, outcomes, strict=True):
        if isinstance(outcome, Exception):
            logger.error("s3strata: failed to archive file %s (%s): %s", file.id, file.path, outcome, exc_info=outcome)


def _count_archived(outcomes: list[PhysicalFile | Exception | None]) -> int:
    return sum(1 for o in outcomes if o is not None and not isinstance(o, Exception))


class FileManager:
    """Tiered file storage over two S3 buckets and your database (upstream's async API)."""

    def __init__(self, config: S3StrataConfig, adapter: StorageAdapter) -> None:
        self.config = config
        self.adapter = adapter
        self.objectstore = ObjectStore(config)
        # The adapter's optional methods, read once: an undeclared one is never called.
        self.features = features_of(adapter)
        self._ops = Operations(config, self.objectstore, self.features)
        # Work deferred to a commit runs later on the committing thread, through the sync face.
        self._ops.run_sync = lambda op: self.sync._run(op)
        self._executor: ThreadPoolExecutor | None = None
        self._bulk_executor: ThreadPoolExecutor | None = None
        self._executor_pid = -1
        self._sync: SyncFileManager | None = None

    @property
    def sync(self) -> SyncFileManager:
        """Return the sync face: the same operations, driven without an event loop."""
        if self._sync is None:
            as_sync = getattr(self.adapter, "as_sync", None)
            sync_adapter = as_sync() if as_sync is not None else LoopBridgeAdapter(self.adapter)
            self._sync = SyncFileManager(self, sync_adapter, features_of(sync_adapter))
        return self._sync

    def _pool(self, bulk: bool = False) -> ThreadPoolExecutor:
        if self._executor is None or self._bulk_executor is None or self._executor_pid != os.getpid():
            size = self.config.advanced.max_concurrency
            self._executor = ThreadPoolExecutor(size, thread_name_prefix="s3strata")
            self._bulk_executor = ThreadPoolExecutor(_bulk_threads(self.config.advanced), thread_name_prefix="s3strata-bulk")
            self._executor_pid = os.getpid()
        return self._bulk_executor if bulk else self._executor

    async def _drive(self, op: Op[T]) -> T:
        return await drive_async(op, self.adapter, self._pool)

    async def _run(self, op: Op[T], *, shielded: bool = True) -> T:
        """Drive ``op``; a mutating operation runs shielded, so the caller's cancellation does not cut a move in two."""
        if not shielded:
            return await self._drive(op)
        task = asyncio.ensure_future(self._drive(op))
        task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    # -- upstream's API --------------------------------------------------------------

    async def upload(self, data: DataSource, options: UploadOptions | None = None) -> PhysicalFile:
        """Store ``data`` (bytes, a binary file object or a path) and create its record."""
        return await self._run(self._ops.upload(data, options))

    async def get_url(self, file: PhysicalFile, options: GetUrlOptions | None = None) -> str:
        """Return the direct URL of a PUBLIC file or a presigned URL of a PRIVATE one."""
        return self._ops.url(file, options)

    async def set_visibility(self, file: PhysicalFile, options: SetVisibilityOptions) -> PhysicalFile:
        """Move a file between its tier's public and private prefixes."""
        return await self._run(self._ops.set_visibility(file, options))

    async def set_tier(self, file: PhysicalFile, options: SetTierOptions) -> PhysicalFile:
        """Move a file between HOT and COLD."""
        return await self._run(self._ops.set_tier(file, options))

    async def set_hot_duration(self, file: PhysicalFile, options: SetHotDurationOptions) -> PhysicalFile:
        """Set when a HOT file expires: None never, 0 now, N seconds from now."""
        return await self._run(self._ops.set_hot_duration(file, options))

    async def delete(self, file: PhysicalFile) -> None:
        """Delete the record, then the object."""
        await self._run(self._ops.delete(file))

    async def get_by_id(self, id: FileId) -> PhysicalFile | None:
        """Return the record with ``id``, or None."""
        return await self.adapter.find_by_id(id)

    async def exists(self, file: PhysicalFile) -> bool:
        """Return True when the file's object exists in its tier's bucket."""
        return await self._run(self._ops.exists(file), shielded=False)

    async def archive_expired_hot_files(self) -> int:
        """Move every expired HOT file to COLD, a few at a time; return how many moved."""
        outcomes = await self.archive_files(await self.adapter.find_expired_hot_files())
        return _count_archived(outcomes)

    async def list_files(self) -> list[PhysicalFile]:
        """Return every record."""
        return await self.adapter.find_all()

    async def list_all_objects(self, prefix: str | None = None) -> AllBucketObjects:
        """Return the objects of both buckets (a debugging aid: it holds the whole listing)."""
        return await self._run(self._ops.list_all_objects(prefix), shielded=False)

    async def list_orphan_objects(self, prefix: str | None = None, tier: StorageTier | str | None = None) -> list[OrphanObject]:
        """Return objects under the configured prefixes that have no record of their tier and path."""
        return await self._run(self._ops.list_orphan_objects(prefix, tier), shielded=False)

    async def delete_orphan_objects(self, options: DeleteOrphanOptions | None = None) -> DeleteOrphanResult:
        """Delete orphans older than the grace period (or report them with ``dry_run``)."""
        return await self._run(self._ops.delete_orphan_objects(options))

    async def adopt_orphan_objects(self, options: AdoptOrphanOptions | None = None) -> AdoptOrphanResult:
        """Create records for orphans older than the grace period."""
        return await self._run(self._ops.adopt_orphan_objects(options))

    async def sweep_orphans(self, policy: OrphanPolicy, visit: Callable[[OrphanOutcome], None]) -> None:
        """Stream the listings and report, delete or adopt each orphan as ``policy`` says; ``visit`` sees each outcome."""
        await self._run(self._ops.sweep_orphans(policy, visit))

    async def sweep_orphan_keys(
        self, policy: OrphanPolicy, tier: StorageTier | str, keys: list[str], visit: Callable[[OrphanOutcome], None]
    ) -> None:
        """Act on chosen keys as ``policy`` says, each re-checked (inside the prefixes, present, past the grace period)."""
        await self._run(self._ops.sweep_orphan_keys(policy, parse_tier(tier), keys, visit))

    # -- beyond upstream -------------------------------------------------------------

    async def archive_files(self, files: list[PhysicalFile]) -> list[PhysicalFile | Exception | None]:
        """Move ``files`` to COLD as one batch: copies in parallel, one commit, one bulk delete of the sources.

        Return an outcome per file: its updated record, an exception (``ConflictError`` when
        another writer moved it first), or None when it was not HOT.
        """
        # Shielded as a whole, like every mutating operation: a cancelled caller must not leave the
        # batch copied but uncommitted, its claims held until they expire.
        task = asyncio.ensure_future(self._archive_files(files))
        task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    async def _archive_files(self, files: list[PhysicalFile]) -> list[PhysicalFile | Exception | None]:
        limit = asyncio.Semaphore(self.config.advanced.max_concurrency)
        claim = await self._run(self._ops.claim_archive(files))

        async def copy(file: PhysicalFile | Exception | None) -> Copied | Exception | None:
            if not isinstance(file, PhysicalFile):
                return file
            async with limit:
                try:
                    return await self._run(self._ops.copy_for_archive(file, claim.owner, claim.taken))
                except Exception as exc:
                    return exc

        copies = list(await asyncio.gather(*(copy(f) for f in claim.files)))
        outcomes = await self._run(self._ops.finish_archive(copies, claim))
        _log_failures(files, outcomes)
        return outcomes

    async def delete_object(self, tier: StorageTier | str, key: str, wait: float | None = 0) -> bool:
        """Delete the object at (tier, key) under its claim when no record points at it; True if deleted."""
        return await self._run(self._ops.delete_object(parse_tier(tier), key, wait))

    async def adopt_object(
        self,
        tier: StorageTier | str,
        key: str,
        filename: str | None = None,
        hot_until: datetime | None = None,
        wait: float | None = 0,
    ) -> PhysicalFile | None:
        """Create the record of an orphan object under its claim; None when it is not an orphan."""
        name = clean_filename(filename or key.rsplit("/", 1)[-1])
        return await self._run(self._ops.adopt_object(parse_tier(tier), key, name, hot_until, wait))

    def visibility_of(self, file: PhysicalFile) -> FileVisibility:
        """Return the file's visibility, read from its path by its tier's configured prefixes."""
        return self._ops._location(file)[1]

    # -- the deep archive (docs/archive.md) ---------------------------------------------

    async def restore(self, file: PhysicalFile, options: RestoreOptions | None = None) -> RestoreResult:
        """Request a restore of an archived file's object; a second request while one runs changes nothing."""
        return await self._run(self._ops.restore(file, options))

    async def restore_status(self, file: PhysicalFile) -> RestoreStatus:
        """Return the object's archive state as a HEAD shows it (readable, archived, restoring, restored until)."""
        return await self._run(self._ops.status(file), shielded=False)

    async def complete_restore(self, file: PhysicalFile, options: RestoreOptions | None = None) -> RestoreResult:
        """Check a restore, record its state, and run the file's pending move once restored."""
        return await self._run(self._ops.complete_restore(file, options))

    async def open(self, file: PhysicalFile) -> IO[bytes]:
        """Return a seekable binary stream over the file's object, fetching ranges on demand."""
        tier = parse_tier(file.storage_tier, what="storage_tier")
        return await asyncio.get_running_loop().run_in_executor(self._pool(), self.objectstore.open, tier, file.path)

    async def download(self, file: PhysicalFile, fileobj: IO[bytes]) -> None:
        """Stream the file's object into the writable binary ``fileobj``."""
        tier = parse_tier(file.storage_tier, what="storage_tier")
        await asyncio.get_running_loop().run_in_executor(
            self._pool(bulk=True), self.objectstore.download, tier, file.path, fileobj
        )

    async def close(self) -> None:
        """Stop the thread pool (optional; it is also stopped at exit)."""
        for pool in (self._executor, self._bulk_executor):
            if pool is not None:
                pool.shutdown(wait=True)
        self._executor = self._bulk_executor = None


class SyncFileManager:
    """The sync face of a FileManager: the same operations, for Django views, Celery tasks and commands."""

    def __init__(self, manager: FileManager, adapter: SyncStorageAdapter, features: AdapterFeatures | None = None) -> None:
        self.manager = manager
        self.adapter = adapter
        self.objectstore = manager.objectstore
        #: This face's adapter's own optional methods (a hand-written sync face may have fewer).
        self.features = features if features is not None else manager.features
        self._ops = manager._ops
        if self.features != manager.features:
            self._ops = Operations(manager.config, manager.objectstore, self.features)
            self._ops.run_sync = manager._ops.run_sync

    def _run(self, op: Op[T]) -> T:
        return drive_sync(op, self.adapter)

    def upload(self, data: DataSource, options: UploadOptions | None = None) -> PhysicalFile:
        """Store ``data`` and create its record."""
        return self._run(self._ops.upload(data, options))

    def get_url(self, file: PhysicalFile, options: GetUrlOptions | None = None) -> str:
        """Return the direct or presigned URL."""
        return self._ops.url(file, options)

    def set_visibility(self, file: PhysicalFile, options: SetVisibilityOptions) -> PhysicalFile:
        """Move a file between public and private."""
        return self._run(self._ops.set_visibility(file, options))

    def set_tier(self, file: PhysicalFile, options: SetTierOptions) -> PhysicalFile:
        """Move a file between HOT and COLD."""
        return self._run(self._ops.set_tier(file, options))

    def set_hot_duration(self, file: PhysicalFile, options: SetHotDurationOptions) -> PhysicalFile:
        """Set when a HOT file expires."""
        return self._run(self._ops.set_hot_duration(file, options))

    def delete(self, file: PhysicalFile) -> None:
        """Delete the record, then the object."""
        self._run(self._ops.delete(file))

    def get_by_id(self, id: FileId) -> PhysicalFile | None:
        """Return the record with ``id``, or None."""
        return self.adapter.find_by_id(id)

    def exists(self, file: PhysicalFile) -> bool:
        """Return True when the file's object exists."""
        return self._run(self._ops.exists(file))

    def archive_expired_hot_files(self) -> int:
        """Move every expired HOT file to COLD on a bounded thread pool; return how many moved."""
        return _count_archived(self.archive_files(self.adapter.find_expired_hot_files()))

    def archive_files(self, files: list[PhysicalFile], executor: Executor | None = None) -> list[PhysicalFile | Exception | None]:
        """Move ``files`` to COLD as one batch (copies on ``executor`` or a pool of its own); an outcome per file.

        The outcome is the updated record, an exception (``ConflictError`` when another writer
        moved the file first), or None when it was not HOT.
        """
        if not files:
            return []
        claim = self.claim_archive(files)

        def copy(file: PhysicalFile | Exception | None) -> Copied | Exception | None:
            return self.copy_for_archive(file, claim) if isinstance(file, PhysicalFile) else file

        if executor is not None:
            copies = list(executor.map(copy, claim.files))
        else:
            size = min(len(files), self.manager.config.advanced.max_concurrency)
            with ThreadPoolExecutor(size, thread_name_prefix="s3strata-archive") as pool:
                copies = list(pool.map(copy, claim.files))
        outcomes = self.finish_archive(copies, claim)
        _log_failures(files, outcomes)
        return outcomes

    # The three steps of archive_files, for callers that overlap one batch's commit with the next one's copies.

    def claim_archive(self, files: list[PhysicalFile]) -> ArchiveClaim:
        """Claim the batch's keys in one adapter call; ``.files`` holds each file, or why it is left out."""
        return self._run(self._ops.claim_archive(files))

    def copy_for_archive(self, file: PhysicalFile, claim: ArchiveClaim | None = None) -> Copied | Exception | None:
        """Copy one HOT file to COLD and verify it, uncommitted; the error instead of raising; None if not HOT."""
        try:
            owner, taken = (claim.owner, claim.taken) if claim is not None else (None, None)
            return self._run(self._ops.copy_for_archive(file, owner, taken))
        except Exception as exc:
            return exc

    def finish_archive(
        self, copies: list[Copied | Exception | None], claim: ArchiveClaim | None = None
    ) -> list[PhysicalFile | Exception | None]:
        """Commit the copies at once, delete their sources at once, release the claims; each one's outcome."""
        return self._run(self._ops.finish_archive(copies, claim))

    def delete_object(self, tier: StorageTier | str, key: str, wait: float | None = 0) -> bool:
        """Delete the object at (tier, key) under its claim when no record points at it; True if deleted."""
        return self._run(self._ops.delete_object(parse_tier(tier), key, wait))

    def adopt_object(
        self,
        tier: StorageTier | str,
        key: str,
        filename: str | None = None,
        hot_until: datetime | None = None,
        wait: float | None = 0,
    ) -> PhysicalFile | None:
        """Create the record of an orphan object under its claim; None when it is not an orphan (see the core docs).

        ``wait``: seconds to wait for another writer's claim (None: ``claim_wait``; 0: skip at once).
        """
        name = clean_filename(filename or key.rsplit("/", 1)[-1])
        return self._run(self._ops.adopt_object(parse_tier(tier), key, name, hot_until, wait))

    def restore(self, file: PhysicalFile, options: RestoreOptions | None = None) -> RestoreResult:
        """Request a restore of an archived file's object; a second request while one runs changes nothing."""
        return self._run(self._ops.restore(file, options))

    def restore_status(self, file: PhysicalFile) -> RestoreStatus:
        """Return the object's archive state as a HEAD shows it."""
        return self._run(self._ops.status(file))

    def complete_restore(self, file: PhysicalFile, options: RestoreOptions | None = None) -> RestoreResult:
        """Check a restore, record its state, and run the file's pending move once restored."""
        return self._run(self._ops.complete_restore(file, options))

    def relocate(self, file: PhysicalFile, tier: StorageTier | str, key: str) -> PhysicalFile | None:
        """Point the record at the object at (tier, key) under both keys' claims; None when it changed meanwhile."""
        return self._run(self._ops.relocate(file, parse_tier(tier), key))

    def list_files(self) -> list[PhysicalFile]:
        """Return every record."""
        return self.adapter.find_all()

    def list_all_objects(self, prefix: str | None = None) -> AllBucketObjects:
        """Return the objects of both buckets."""
        return self._run(self._ops.list_all_objects(prefix))

    def list_orphan_objects(self, prefix: str | None = None, tier: StorageTier | str | None = None) -> list[OrphanObject]:
        """Return orphan objects."""
        return self._run(self._ops.list_orphan_objects(prefix, tier))

    def delete_orphan_objects(self, options: DeleteOrphanOptions | None = None) -> DeleteOrphanResult:
        """Delete orphans older than the grace period."""
        return self._run(self._ops.delete_orphan_objects(options))

    def adopt_orphan_objects(self, options: AdoptOrphanOptions | None = None) -> AdoptOrphanResult:
        """Create records for orphans older than the grace period."""
        return self._run(self._ops.adopt_orphan_objects(options))

    def sweep_orphans(self, policy: OrphanPolicy, visit: Callable[[OrphanOutcome], None]) -> None:
        """Stream the listings and report, delete or adopt each orphan as ``policy`` says; ``visit`` sees each outcome."""
        self._run(self._ops.sweep_orphans(policy, visit))

    def sweep_orphan_keys(
        self, policy: OrphanPolicy, tier: StorageTier | str, keys: list[str], visit: Callable[[OrphanOutcome], None]
    ) -> None:
        """Act on chosen keys as ``policy`` says, each re-checked (inside the prefixes, present, past the grace period)."""
        self._run(self._ops.sweep_orphan_keys(policy, parse_tier(tier), keys, visit))

    def scan_orphans(
        self,
        visit: Callable[[OrphanObject], None],
        prefix: str | None = None,
        tier: StorageTier | str | None = None,
        grace_period: int | None = None,
    ) -> None:
        """Call ``visit`` for each orphan older than ``grace_period`` seconds (0 or None: any age), streaming the listings."""
        policy = OrphanPolicy(grace_period=grace_period or 0, prefix=prefix, tier=tier)
        self.sweep_orphans(policy, lambda outcome: visit(outcome.orphan))

    def open(self, file: PhysicalFile) -> IO[bytes]:
        """Return a seekable binary stream over the file's object."""
        return self.objectstore.open(parse_tier(file.storage_tier, what="storage_tier"), file.path)

    def download(self, file: PhysicalFile, fileobj: IO[bytes]) -> None:
        """Stream the file's object into ``fileobj``."""
        self.objectstore.download(parse_tier(file.storage_tier, what="storage_tier"), file.path, fileobj)
