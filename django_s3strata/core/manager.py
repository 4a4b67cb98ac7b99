"""FileManager: upstream's async API, its sync twin, and the one implementation both run.

Each operation is written once, as a generator that yields the steps it needs (an S3
call or an adapter call) and receives their results. ``FileManager`` drives it with
S3 calls on a thread pool and awaited adapter calls, so nothing blocks the event
loop; ``SyncFileManager`` drives the same generator inline with a sync adapter, with
no event loop at all. URL building is pure CPU and runs inline on both faces.

The move protocol (``set_tier``, ``set_visibility``): copy, verify, commit the record,
then delete the source. A failure before the commit leaves the record and the source
as they were and removes the copy; a failure after it leaves a stale source copy,
which is an orphan (a tier and key with no record) that the orphan sweep finds.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import uuid
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any, TypeVar, cast

from .adapters import LoopBridgeAdapter, StorageAdapter, SyncStorageAdapter, paths_of
from .config import S3StrataAdvancedOptions, S3StrataConfig, parse_tier, parse_visibility
from .exceptions import ConflictError, InvalidOptionError, S3StrataError, VerificationError
from .keys import build_key, clean_filename, default_suffix, split_key, validate_suffix
from .objectstore import PART_COPY_THRESHOLD, DataSource, ObjectStore, _plain_md5, content_disposition, guess_content_type
from .types import (
    AdoptOrphanOptions,
    AdoptOrphanResult,
    AllBucketObjects,
    BucketObjects,
    DeleteOrphanOptions,
    DeleteOrphanResult,
    FileId,
    FileVisibility,
    GetUrlOptions,
    ObjectInfo,
    OrphanObject,
    PhysicalFile,
    S3Object,
    SetHotDurationOptions,
    SetTierOptions,
    SetVisibilityOptions,
    StorageTier,
    UploadOptions,
)

__all__ = ["Copied", "FileManager", "SyncFileManager"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class _S3:
    """A step: call ``fn(*args, **kwargs)`` (blocking S3 I/O); ``bulk`` when it moves many bytes through the client."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    bulk: bool = False


#: A step that moves more bytes than this through the client (an upload, a streamed copy) is "bulk".
BULK_BYTES = 1024 * 1024


def _bulk_threads(advanced: S3StrataAdvancedOptions) -> int:
    """Threads for the async API's bulk steps: ``async_bulk_concurrency``, else one per core (at least 2).

    Hashing and signing a large body keeps a thread on a core; sixteen of them at once leave the
    event loop waiting its turn (stalls of 80-150 ms were measured on two cores, 20-36 ms with two
    threads). Small requests, which mostly wait for the network, keep ``max_concurrency`` threads.
    """
    if advanced.async_bulk_concurrency is not None:
        return advanced.async_bulk_concurrency
    return max(2, min(advanced.max_concurrency, os.cpu_count() or 1))


#: What S3 answers a copy pinned to a recorded ETag when the object is no longer that version.
_STALE_RECORD = {"PreconditionFailed", "412", "NoSuchKey", "404", "NotFound"}


def _describes_another_object(exc: BaseException) -> bool:
    """True when a copy pinned to a record's ETag failed because the object is not that version any more."""
    return isinstance(exc, VerificationError) or (isinstance(exc, S3StrataError) and getattr(exc, "code", None) in _STALE_RECORD)


def _recorded_source(file: PhysicalFile, key: str) -> ObjectInfo | None:
    """Return the object as the record knows it (records with ``size`` and ``etag``), or None."""
    size, etag = getattr(file, "size", None), getattr(file, "etag", None)
    if not isinstance(size, int) or isinstance(size, bool) or not isinstance(etag, str):
        return None
    if not _plain_md5(etag):
        # Only an MD5 lets the copy's own ETag prove it, even on a server that ignores CopySourceIfMatch.
        return None
    if size > PART_COPY_THRESHOLD:
        return None  # a copy in parts reads the object's metadata anyway
    return ObjectInfo(key, size, etag, None, getattr(file, "content_type", None), None)


def _payload_size(data: Any) -> int | None:
    if isinstance(data, bytes | bytearray | memoryview):
        return len(data)
    if isinstance(data, os.PathLike):
        try:
            return os.path.getsize(data)
        except OSError:
            return None
    return None


@dataclass
class _DB:
    """A step: call the adapter's ``method(*args, **kwargs)``."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


Op = Generator[_S3 | _DB, Any, T]


@dataclass
class Copied:
    """A verified copy waiting for its commit: the file, where it is and where it now also is."""

    file: PhysicalFile
    src: StorageTier
    src_key: str
    dst: StorageTier
    dst_key: str
    changes: dict[str, Any]
    size: int


def _advance(op: Op[Any], value: Any, error: BaseException | None) -> tuple[bool, Any]:
    """Resume ``op`` with a step's result or error; return (True, its result) or (False, its next step)."""
    try:
        return False, op.throw(error) if error is not None else op.send(value)
    except StopIteration as stop:
        return True, stop.value


def _now() -> datetime:
    return datetime.now(UTC)


def _seconds(value: object, what: str, *, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidOptionError(f"{what}={value!r} is invalid: give a whole number of seconds, 0 or more.")
    return value


def _next_page(pages: Iterator[list[S3Object]]) -> list[S3Object] | None:
    return next(pages, None)


class _Operations:
    """The operations as step generators; shared by both faces."""

    def __init__(self, config: S3StrataConfig, store: ObjectStore) -> None:
        self.config = config
        self.advanced = config.advanced
        self.store = store

    # -- helpers -------------------------------------------------------------------

    def _location(self, file: PhysicalFile) -> tuple[StorageTier, FileVisibility, str]:
        tier = parse_tier(file.storage_tier, what="storage_tier")
        visibility, suffix = split_key(self.store.tier(tier), file.path)
        return tier, visibility, suffix

    def url(self, file: PhysicalFile, options: GetUrlOptions | None) -> str:
        """Return the public URL or a presigned URL; no network, no thread hop."""
        tier, visibility, _ = self._location(file)
        if visibility is FileVisibility.PUBLIC:
            return self.store.public_url(tier, file.path)
        opts = options or GetUrlOptions()
        expires = opts.expires_in if opts.expires_in is not None else self.advanced.default_presigned_url_expiration
        disposition = opts.content_disposition
        if disposition is None and self.advanced.presign_content_disposition:
            disposition = content_disposition(self.advanced.presign_content_disposition, file.filename)
        return self.store.presigned_url(tier, file.path, expires, disposition)

    def _discard(self, tier: StorageTier, key: str, why: str) -> Op[None]:
        try:
            yield _S3(self.store.delete, (tier, key))
        except S3StrataError:
            logger.warning(
                "s3strata: could not delete %s in %s (%s); the orphan sweep will.", key, tier.value, why, exc_info=True
            )

    def _no_record_at(self, tier: StorageTier, key: str, file_id: FileId | None = None) -> Op[bool]:
        """Return True only when it is certain that no record points at (tier, key)."""
        try:
            if file_id is not None:
                record = yield _DB("find_by_id", (file_id,))
                if record is not None and parse_tier(record.storage_tier) is tier and record.path == key:
                    return False
            existing = yield _DB("find_existing_paths", (tier, [key]))
            return key not in existing
        except NotImplementedError:
            return file_id is not None
        except Exception:
            logger.warning(
                "s3strata: could not check for a record at %s in %s; keeping the object.", key, tier.value, exc_info=True
            )
            return False

    # -- upload --------------------------------------------------------------------

    def upload(self, data: DataSource, options: UploadOptions | None) -> Op[PhysicalFile]:
        o = options or UploadOptions()
        tier = parse_tier(o.tier if o.tier is not None else self.advanced.default_storage_tier)
        visibility = parse_visibility(o.visibility if o.visibility is not None else self.advanced.default_visibility)
        duration = _seconds(o.hot_duration, "hot_duration")
        filename = clean_filename(o.filename) if o.filename is not None else str(uuid.uuid4())
        suffix = validate_suffix(o.path_suffix) if o.path_suffix is not None else default_suffix(filename)
        key = build_key(self.store.tier(tier), visibility, suffix)
        content_type = o.content_type or guess_content_type(filename)
        size = _payload_size(data)
        stored: ObjectInfo = yield _S3(
            self.store.put,
            (tier, key, data),
            {"content_type": content_type, "max_size": self.advanced.max_file_size},
            bulk=size is None or size > BULK_BYTES,
        )
        hot_until = _now() + timedelta(seconds=duration) if tier is StorageTier.HOT and duration is not None else None
        fields = {"storage_tier": tier, "filename": filename, "path": key, "hot_until": hot_until}
        record: PhysicalFile
        try:
            try:
                # Adapters that keep the size and ETag let later moves skip reading the object first.
                record = yield _DB("create_stored", (), {**fields, "stored": stored})
            except NotImplementedError:
                record = yield _DB("create", (), fields)
        except BaseException:
            # Only remove the object when no record can be pointing at it (a create may commit and still raise).
            if (yield from self._no_record_at(tier, key)):
                yield from self._discard(tier, key, "its record was not created")
            raise
        return record

    # -- moves ---------------------------------------------------------------------

    def _copy(
        self, file: PhysicalFile, src: StorageTier, src_key: str, dst: StorageTier, dst_key: str, changes: dict[str, Any]
    ) -> Op[Copied]:
        """Copy and verify; on failure remove the partial copy (unless a record points at it)."""
        streamed = not self.store.tier(src).same_location(self.store.tier(dst))
        # A record that knows the object's size and ETag saves the HEAD: the copy is pinned to that ETag.
        source = _recorded_source(file, src_key)
        while True:
            from_record = source is not None
            if source is None:
                source = yield _S3(self.store.require, (src, src_key))
            try:
                yield _S3(
                    self.store.copy, (src, src_key, dst, dst_key), {"source": source}, bulk=streamed and source.size > BULK_BYTES
                )
                return Copied(file, src, src_key, dst, dst_key, changes, source.size)
            except BaseException as exc:
                if from_record and _describes_another_object(exc):
                    # The object changed or went away since its record was written: read it and copy again.
                    logger.info("s3strata: %s is not the object its record describes (%s); reading it first.", src_key, exc)
                    source = None
                    continue
                if (yield from self._no_record_at(dst, dst_key, file.id)):
                    yield from self._discard(dst, dst_key, "the copy failed")
                raise

    def _commit(self, c: Copied) -> Op[PhysicalFile | None]:
        """Commit one copy's new location; return None when the record moved on meanwhile."""
        try:
            try:
                # Compare-and-set: commit only while the record is still where this move found it.
                committed: PhysicalFile | None = yield _DB("update_if", (c.file.id, c.src, c.src_key), c.changes)
            except NotImplementedError:
                committed = yield _DB("update", (c.file.id,), c.changes)
        except BaseException:
            # The commit may or may not have happened: keep both copies; the sweep removes the stale one.
            logger.warning(
                "s3strata: record %s not updated after copying %s to %s; both copies kept.", c.file.id, c.src_key, c.dst_key
            )
            raise
        return committed

    def _settle(self, c: Copied, committed: PhysicalFile | None, stale: list[str] | None) -> Op[PhysicalFile]:
        """After the commit: delete the source (or leave its key in ``stale``); after a lost race, the copy."""
        if committed is None:
            # Another move or a delete won the race: the source is theirs to handle; the copy is nobody's.
            if (yield from self._no_record_at(c.dst, c.dst_key)):
                yield from self._discard(c.dst, c.dst_key, "another writer moved the record first")
            raise ConflictError(c.file.id, c.src_key)
        if stale is not None:
            stale.append(c.src_key)
        else:
            yield from self._discard(c.src, c.src_key, "stale source copy after a move")
        # Records that carry a size (the Django model does) learn it from the verified copy.
        if getattr(committed, "size", False) is None:
            committed.size = c.size  # type: ignore[attr-defined]
        return committed

    def _move(
        self, file: PhysicalFile, src: StorageTier, src_key: str, dst: StorageTier, dst_key: str, changes: dict[str, Any]
    ) -> Op[PhysicalFile]:
        """Copy, verify, commit, then delete the source."""
        copied = yield from self._copy(file, src, src_key, dst, dst_key, changes)
        committed = yield from self._commit(copied)
        return (yield from self._settle(copied, committed, None))

    # -- archival in batches: copy each, commit all at once, delete the sources at once ---------

    def copy_for_archive(self, file: PhysicalFile) -> Op[Copied | None]:
        """Copy one HOT file to COLD and verify it, uncommitted; None when it is not HOT."""
        current, visibility, suffix = self._location(file)
        if current is not StorageTier.HOT:
            return None
        new_key = build_key(self.store.tier(StorageTier.COLD), visibility, suffix)
        changes: dict[str, Any] = {"storage_tier": StorageTier.COLD, "hot_until": None}
        if new_key != file.path:
            changes["path"] = new_key
        return (yield from self._copy(file, current, file.path, StorageTier.COLD, new_key, changes))

    def commit_archived(self, copied: list[Copied], stale: list[str]) -> Op[list[PhysicalFile | Exception]]:
        """Commit verified copies with one ``update_many_if`` (else one by one); settle each; keep going past failures."""
        if not copied:
            return []
        results: list[PhysicalFile | Exception | None]
        try:
            moves = [(c.file, c.changes) for c in copied]
            results = list((yield _DB("update_many_if", (moves,))))
        except NotImplementedError:
            results = []
            for c in copied:
                try:
                    results.append((yield from self._commit(c)))
                except Exception as exc:
                    results.append(exc)
        except Exception as exc:
            # Unknown whether the batch committed: every copy is kept; a re-run or the sweep converges.
            logger.warning("s3strata: a batch of %d archived copies was not committed; all copies kept.", len(copied))
            return [exc] * len(copied)
        out: list[PhysicalFile | Exception] = []
        for c, committed in zip(copied, results, strict=True):
            if isinstance(committed, Exception):
                out.append(committed)
                continue
            try:
                out.append((yield from self._settle(c, committed, stale)))
            except ConflictError as exc:
                out.append(exc)
        return out

    def finish_archive(self, copies: list[Copied | Exception | None]) -> Op[list[PhysicalFile | Exception | None]]:
        """Commit a batch's copies at once, then delete their sources at once; return each file's outcome."""
        pending = [c for c in copies if isinstance(c, Copied)]
        stale: list[str] = []
        committed = iter((yield from self.commit_archived(pending, stale)))
        yield from self.delete_stale(StorageTier.HOT, stale)
        return [next(committed) if isinstance(c, Copied) else c for c in copies]

    def delete_stale(self, tier: StorageTier, keys: list[str]) -> Op[None]:
        """Delete the stale source copies of committed moves in bulk; a failure leaves orphans for the sweep."""
        if not keys:
            return
        try:
            yield _S3(self.store.delete_many, (tier, keys))
        except S3StrataError:
            logger.warning(
                "s3strata: could not delete %d stale source copies in %s; the orphan sweep will.",
                len(keys),
                tier.value,
                exc_info=True,
            )

    def set_visibility(self, file: PhysicalFile, options: SetVisibilityOptions) -> Op[PhysicalFile]:
        tier, current, suffix = self._location(file)
        target = parse_visibility(options.visibility)
        if current is target:
            return file
        new_key = build_key(self.store.tier(tier), target, suffix)
        if not options.move_file:
            updated: PhysicalFile = yield _DB("update", (file.id,), {"path": new_key})
            return updated
        return (yield from self._move(file, tier, file.path, tier, new_key, {"path": new_key}))

    def set_tier(self, file: PhysicalFile, options: SetTierOptions) -> Op[PhysicalFile]:
        current, visibility, suffix = self._location(file)
        target = parse_tier(options.tier)
        duration = _seconds(options.hot_duration, "hot_duration")
        if current is target:
            return file
        # The suffix is kept; the prefix is the target tier's (the same unless tiers have custom prefixes).
        new_key = build_key(self.store.tier(target), visibility, suffix)
        changes: dict[str, Any] = {"storage_tier": target}
        if new_key != file.path:
            changes["path"] = new_key
        if target is StorageTier.COLD:
            changes["hot_until"] = None
        elif duration is not None:
            changes["hot_until"] = _now() + timedelta(seconds=duration)
        if options.move_file:
            updated = yield from self._move(file, current, file.path, target, new_key, changes)
        else:
            updated = yield _DB("update", (file.id,), changes)
        if target is StorageTier.COLD and updated.hot_until is not None:
            _warn_cannot_clear(updated)
        return updated

    def set_hot_duration(self, file: PhysicalFile, options: SetHotDurationOptions) -> Op[PhysicalFile]:
        tier = parse_tier(file.storage_tier, what="storage_tier")
        if tier is not StorageTier.HOT:
            raise InvalidOptionError(f"set_hot_duration applies to HOT files only; file {file.id!r} is {tier.value}.")
        duration = _seconds(options.duration, "duration")
        hot_until = None if duration is None else _now() + timedelta(seconds=duration)
        updated: PhysicalFile = yield _DB("update", (file.id,), {"hot_until": hot_until})
        if hot_until is None and updated.hot_until is not None:
            _warn_cannot_clear(updated)
        return updated

    def delete(self, file: PhysicalFile) -> Op[None]:
        tier = parse_tier(file.storage_tier, what="storage_tier")
        # Record first: a failure in between leaves an orphan object, never a record pointing at nothing.
        yield _DB("delete", (file.id,))
        yield from self._discard(tier, file.path, "its record was deleted")

    def exists(self, file: PhysicalFile) -> Op[bool]:
        tier = parse_tier(file.storage_tier, what="storage_tier")
        info = yield _S3(self.store.head, (tier, file.path))
        return info is not None

    # -- listings and orphans --------------------------------------------------------

    def list_all_objects(self, prefix: str | None) -> Op[AllBucketObjects]:
        buckets = []
        for tier in StorageTier:
            objects: list[S3Object] = []
            pages = self.store.iter_pages(tier, prefix)
            while (page := (yield _S3(_next_page, (pages,)))) is not None:
                objects.extend(page)
            buckets.append(BucketObjects(tier, self.store.tier(tier).bucket, objects, len(objects)))
        hot, cold = buckets
        return AllBucketObjects(hot, cold, hot.count + cold.count, _now())

    def _scan_prefixes(self, tier: StorageTier, prefix: str | None) -> list[str]:
        """Return the listing prefixes for ``tier``: only ever inside its public and private prefixes."""
        r = self.store.tier(tier)
        roots = [r.public_prefix + "/", r.private_prefix + "/"]
        if not prefix:
            return roots
        return [
            prefix if prefix.startswith(root) else root for root in roots if prefix.startswith(root) or root.startswith(prefix)
        ]

    def orphans(
        self,
        prefix: str | None,
        tier: StorageTier | str | None,
        grace_period: int | None,
        visit: Callable[[OrphanObject], Op[None]],
    ) -> Op[None]:
        """Stream each tier's listing page by page, and visit each orphan (checked in bulk per page)."""
        tiers = [parse_tier(tier)] if tier is not None else list(StorageTier)
        grace = _seconds(grace_period, "grace_period")
        cutoff = _now() - timedelta(seconds=grace) if grace else None
        fallback: set[tuple[StorageTier, str]] | None = None
        for t in tiers:
            bucket = self.store.tier(t).bucket
            for scan in self._scan_prefixes(t, prefix):
                pages = self.store.iter_pages(t, scan, read_ahead=True)
                while (page := (yield _S3(_next_page, (pages,)))) is not None:
                    if not page:
                        continue
                    keys = [o.key for o in page]
                    existing: set[str]
                    if fallback is None:
                        try:
                            existing = yield _DB("find_existing_paths", (t, keys))
                        except NotImplementedError:
                            fallback = paths_of((yield _DB("find_all")))
                    if fallback is not None:
                        existing = {k for k in keys if (t, k) in fallback}
                    for obj in page:
                        if obj.key in existing:
                            continue
                        if cutoff is not None and (obj.last_modified is None or obj.last_modified > cutoff):
                            continue
                        orphan = OrphanObject(obj.key, obj.last_modified, obj.size, obj.etag, obj.storage_class, t, bucket)
                        yield from visit(orphan)

    def list_orphan_objects(self, prefix: str | None, tier: StorageTier | str | None = None) -> Op[list[OrphanObject]]:
        found: list[OrphanObject] = []

        def collect(orphan: OrphanObject) -> Op[None]:
            found.append(orphan)
            yield from ()

        yield from self.orphans(prefix, tier, None, collect)
        return found

    def delete_orphan_objects(self, options: DeleteOrphanOptions | None) -> Op[DeleteOrphanResult]:
        o = options or DeleteOrphanOptions()
        result = DeleteOrphanResult(0, 0, [], [], o.dry_run)

        def remove(orphan: OrphanObject) -> Op[None]:
            try:
                if not o.dry_run:
                    yield _S3(self.store.delete, (orphan.tier, orphan.key))
                result.deleted += 1
                result.deleted_paths.append(orphan.key)
            except S3StrataError as exc:
                result.failed += 1
                result.errors.append({"path": orphan.key, "tier": orphan.tier.value, "error": str(exc)})
                logger.warning("s3strata: could not delete orphan %s: %s", orphan.key, exc)

        grace = o.grace_period if o.grace_period is not None else self.advanced.orphan_grace_period
        yield from self.orphans(o.prefix, o.tier, grace, remove)
        return result

    def adopt_orphan_objects(self, options: AdoptOrphanOptions | None) -> Op[AdoptOrphanResult]:
        o = options or AdoptOrphanOptions()
        duration = _seconds(o.hot_duration, "hot_duration")
        extract = o.extract_filename or (lambda key: key.rsplit("/", 1)[-1])
        result = AdoptOrphanResult(0, 0, [])

        def adopt(orphan: OrphanObject) -> Op[None]:
            try:
                filename = clean_filename(extract(orphan.key))
                hot_until = None
                if orphan.tier is StorageTier.HOT and o.set_hot_until and duration is not None:
                    hot_until = _now() + timedelta(seconds=duration)
                record: PhysicalFile = yield _DB(
                    "create", (), {"storage_tier": orphan.tier, "filename": filename, "path": orphan.key, "hot_until": hot_until}
                )
                result.adopted += 1
                result.adopted_file_ids.append(record.id)
            except Exception as exc:
                result.failed += 1
                result.errors.append({"path": orphan.key, "tier": orphan.tier.value, "error": str(exc)})
                logger.warning("s3strata: could not adopt orphan %s: %s", orphan.key, exc)

        grace = o.grace_period if o.grace_period is not None else self.advanced.orphan_grace_period
        yield from self.orphans(o.prefix, o.tier, grace, adopt)
        return result


def _warn_cannot_clear(record: PhysicalFile) -> None:
    logger.warning(
        "s3strata: the storage adapter kept hot_until=%s on record %s after being asked to clear it; "
        "its update() must treat hot_until=None as 'clear' (see StorageAdapter).",
        record.hot_until,
        record.id,
    )


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
        self._ops = _Operations(config, self.objectstore)
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
            self._sync = SyncFileManager(self, sync_adapter)
        return self._sync

    def _pool(self, bulk: bool = False) -> ThreadPoolExecutor:
        if self._executor is None or self._bulk_executor is None or self._executor_pid != os.getpid():
            size = self.config.advanced.max_concurrency
            self._executor = ThreadPoolExecutor(size, thread_name_prefix="s3strata")
            self._bulk_executor = ThreadPoolExecutor(_bulk_threads(self.config.advanced), thread_name_prefix="s3strata-bulk")
            self._executor_pid = os.getpid()
        return self._bulk_executor if bulk else self._executor

    async def _run(self, op: Op[T]) -> T:
        loop = asyncio.get_running_loop()
        value: Any = None
        error: BaseException | None = None
        while True:
            done, step = _advance(op, value, error)
            if done:
                return cast(T, step)
            value, error = None, None
            try:
                if isinstance(step, _S3):
                    pool = self._pool(step.bulk)
                    value = await loop.run_in_executor(pool, functools.partial(step.fn, *step.args, **step.kwargs))
                else:
                    method = getattr(self.adapter, step.method, None)
                    if method is None:
                        raise NotImplementedError(step.method)
                    value = await method(*step.args, **step.kwargs)
            except Exception as exc:
                error = exc

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
        return await self._run(self._ops.exists(file))

    async def archive_expired_hot_files(self) -> int:
        """Move every expired HOT file to COLD, a few at a time; return how many moved."""
        outcomes = await self.archive_files(await self.adapter.find_expired_hot_files())
        return _count_archived(outcomes)

    async def list_files(self) -> list[PhysicalFile]:
        """Return every record."""
        return await self.adapter.find_all()

    async def list_all_objects(self, prefix: str | None = None) -> AllBucketObjects:
        """Return the objects of both buckets (a debugging aid: it holds the whole listing)."""
        return await self._run(self._ops.list_all_objects(prefix))

    async def list_orphan_objects(self, prefix: str | None = None, tier: StorageTier | str | None = None) -> list[OrphanObject]:
        """Return objects under the configured prefixes that have no record of their tier and path."""
        return await self._run(self._ops.list_orphan_objects(prefix, tier))

    async def delete_orphan_objects(self, options: DeleteOrphanOptions | None = None) -> DeleteOrphanResult:
        """Delete orphans older than the grace period (or report them with ``dry_run``)."""
        return await self._run(self._ops.delete_orphan_objects(options))

    async def adopt_orphan_objects(self, options: AdoptOrphanOptions | None = None) -> AdoptOrphanResult:
        """Create records for orphans older than the grace period."""
        return await self._run(self._ops.adopt_orphan_objects(options))

    # -- beyond upstream -------------------------------------------------------------

    async def archive_files(self, files: list[PhysicalFile]) -> list[PhysicalFile | Exception | None]:
        """Move ``files`` to COLD as one batch: copies in parallel, one commit, one bulk delete of the sources.

        Return an outcome per file: its updated record, an exception (``ConflictError`` when
        another writer moved it first), or None when it was not HOT.
        """
        limit = asyncio.Semaphore(self.config.advanced.max_concurrency)

        async def copy(file: PhysicalFile) -> Copied | Exception | None:
            async with limit:
                try:
                    return await self._run(self._ops.copy_for_archive(file))
                except Exception as exc:
                    return exc

        copies = list(await asyncio.gather(*(copy(f) for f in files)))
        outcomes = await self._run(self._ops.finish_archive(copies))
        _log_failures(files, outcomes)
        return outcomes

    def visibility_of(self, file: PhysicalFile) -> FileVisibility:
        """Return the file's visibility, read from its path by its tier's configured prefixes."""
        return self._ops._location(file)[1]

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

    def __init__(self, manager: FileManager, adapter: SyncStorageAdapter) -> None:
        self.manager = manager
        self.adapter = adapter
        self.objectstore = manager.objectstore
        self._ops = manager._ops

    def _run(self, op: Op[T]) -> T:
        value: Any = None
        error: BaseException | None = None
        while True:
            done, step = _advance(op, value, error)
            if done:
                return cast(T, step)
            value, error = None, None
            try:
                if isinstance(step, _S3):
                    value = step.fn(*step.args, **step.kwargs)
                else:
                    method = getattr(self.adapter, step.method, None)
                    if method is None:
                        raise NotImplementedError(step.method)
                    value = method(*step.args, **step.kwargs)
            except Exception as exc:
                error = exc

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
        if executor is not None:
            copies = list(executor.map(self.copy_for_archive, files))
        else:
            size = min(len(files), self.manager.config.advanced.max_concurrency)
            with ThreadPoolExecutor(size, thread_name_prefix="s3strata-archive") as pool:
                copies = list(pool.map(self.copy_for_archive, files))
        outcomes = self.finish_archive(copies)
        _log_failures(files, outcomes)
        return outcomes

    # The two halves of archive_files, for callers that overlap one batch's commit with the next one's copies.

    def copy_for_archive(self, file: PhysicalFile) -> Copied | Exception | None:
        """Copy one HOT file to COLD and verify it, uncommitted; the error instead of raising; None if not HOT."""
        try:
            return self._run(self._ops.copy_for_archive(file))
        except Exception as exc:
            return exc

    def finish_archive(self, copies: list[Copied | Exception | None]) -> list[PhysicalFile | Exception | None]:
        """Commit the copies at once, delete their sources at once; return each one's outcome."""
        return self._run(self._ops.finish_archive(copies))

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

    def scan_orphans(
        self,
        visit: Callable[[OrphanObject], None],
        prefix: str | None = None,
        tier: StorageTier | str | None = None,
        grace_period: int | None = None,
    ) -> None:
        """Call ``visit`` for each orphan older than ``grace_period`` seconds, streaming the listings."""

        def step(orphan: OrphanObject) -> Op[None]:
            visit(orphan)
            yield from ()

        self._run(self._ops.orphans(prefix, tier, grace_period, step))

    def open(self, file: PhysicalFile) -> IO[bytes]:
        """Return a seekable binary stream over the file's object."""
        return self.objectstore.open(parse_tier(file.storage_tier, what="storage_tier"), file.path)

    def download(self, file: PhysicalFile, fileobj: IO[bytes]) -> None:
        """Stream the file's object into ``fileobj``."""
        self.objectstore.download(parse_tier(file.storage_tier, what="storage_tier"), file.path, fileobj)
