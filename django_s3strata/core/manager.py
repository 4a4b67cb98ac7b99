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
import functools
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any, TypeVar, cast

from .adapters import ClaimKey, LoopBridgeAdapter, StorageAdapter, SyncStorageAdapter, paths_of
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

__all__ = ["ArchiveClaim", "Copied", "FileManager", "SyncFileManager", "claim_owner"]

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


@dataclass
class _Sleep:
    """A step: wait ``seconds`` before trying a claim again (asyncio.sleep or time.sleep)."""

    seconds: float


Op = Generator[_S3 | _DB | _Sleep, Any, T]


def claim_owner() -> str:
    """Return a new claim owner: ``host:pid:token``, what a ConflictError names as the holder."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


@dataclass
class _Plan:
    """One move: from (src, src_key) to (dst, dst_key), and the record's changes when it commits."""

    src: StorageTier
    src_key: str
    dst: StorageTier
    dst_key: str
    changes: dict[str, Any]

    @property
    def keys(self) -> list[ClaimKey]:
        return [(self.src, self.src_key), (self.dst, self.dst_key)]


@dataclass
class ArchiveClaim:
    """An archival batch's claims: their owner, the keys claimed, and per file the file (claimed),
    a ConflictError (another writer holds it) or None (not HOT)."""

    owner: str | None
    keys: list[ClaimKey]
    files: list[PhysicalFile | Exception | None]
    #: When the claims were taken (``time.monotonic()``).
    taken: float = field(default_factory=time.monotonic)


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

    @property
    def keys(self) -> list[ClaimKey]:
        return [(self.src, self.src_key), (self.dst, self.dst_key)]


def _advance(op: Op[Any], value: Any, error: BaseException | None) -> tuple[bool, Any]:
    """Resume ``op`` with a step's result or error; return (True, its result) or (False, its next step)."""
    try:
        return False, op.throw(error) if error is not None else op.send(value)
    except StopIteration as stop:
        return True, stop.value


def _now() -> datetime:
    return datetime.now(UTC)


def _seconds(value: object, what: str, *, allow_none: bool = True) -> int | None:
    # Bounded (config.MAX_DURATION, 100 years): checked before any S3 write, so ``now + value``
    # can never overflow after an object is stored. One rule, shared with the Django faces.
    from .config import parse_seconds

    return parse_seconds(value, what, allow_none=allow_none)


def _next_page(pages: Iterator[list[S3Object]]) -> list[S3Object] | None:
    return next(pages, None)


class _Operations:
    """The operations as step generators; shared by both faces."""

    def __init__(self, config: S3StrataConfig, store: ObjectStore) -> None:
        self.config = config
        self.advanced = config.advanced
        self.store = store
        #: The sync driver, for work an adapter runs after its open transaction commits.
        self.run_sync: Callable[[Op[Any]], Any] | None = None

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

    # -- claims: every writer of an object holds its key's claim while it writes ------

    def _claim(self, owner: str, keys: list[ClaimKey], wait: float | None = None) -> Op[bool]:
        """Claim ``keys`` for ``owner``, waiting up to ``wait`` seconds for other writers.

        Return True when claimed, False when the adapter keeps no claims (the compare-and-set
        commit is then the only guard). Raise ConflictError naming the holder when the keys stay
        claimed by another writer.
        """
        deadline = time.monotonic() + (self.advanced.claim_wait if wait is None else wait)
        delay = 0.02
        while True:
            try:
                held: dict[ClaimKey, str] = yield _DB("claim_keys", (owner, keys, self.advanced.claim_seconds))
            except NotImplementedError:
                return False
            if not held:
                return True
            mine = [k for k in keys if k not in held]
            if mine:
                yield from self._release(owner, mine)
            if time.monotonic() + delay > deadline:
                (tier, key), holder = next(iter(held.items()))
                raise ConflictError(
                    None,
                    key,
                    f"{key!r} in {tier.value} is being changed by another writer ({holder}); "
                    "nothing was changed: try again once it has finished.",
                    holder=holder,
                )
            yield _Sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 0.5)

    def _still_mine(self, owner: str | None, keys: list[ClaimKey], taken: float | None = None) -> Op[bool]:
        """Renew ``owner``'s claims on ``keys``; False when another writer took one (ours had expired).

        A claim taken (``time.monotonic()``) less than half its life ago cannot have expired: no query.
        """
        if owner is None:
            return True
        if taken is not None and time.monotonic() - taken < self.advanced.claim_seconds / 2:
            return True
        try:
            held = yield _DB("claim_keys", (owner, keys, self.advanced.claim_seconds))
        except Exception:
            logger.warning("s3strata: could not renew the claims on %s; leaving them alone.", keys, exc_info=True)
            return False
        return not held

    def _release(self, owner: str | None, keys: list[ClaimKey]) -> Op[None]:
        if owner is None or not keys:
            return
        try:
            yield _DB("release_keys", (owner, keys))
        except Exception:
            logger.warning(
                "s3strata: could not release %d claim(s) of %s; they expire in %d s.",
                len(keys),
                owner,
                self.advanced.claim_seconds,
                exc_info=True,
            )

    def _after_commit(self, tier: StorageTier, key: str) -> Op[bool]:
        """Inside the adapter's open transaction, delete the object at (tier, key) once it commits.

        Return False when no transaction is open (the caller deletes now). A rollback then keeps the
        object its restored record points at; after the commit the delete runs under the key's claim
        and only if no record points at the key by then.
        """
        run = self.run_sync
        if run is None:
            return False
        try:
            deferred: bool = yield _DB("run_after_commit", (lambda: run(self.delete_object(tier, key, None)),))
        except NotImplementedError:
            return False
        return deferred

    def _unreferenced(self, keys: list[ClaimKey]) -> Op[set[ClaimKey]]:
        """Return the keys no record points at (all of them when the adapter cannot tell: a move's own stale sources)."""
        out: set[ClaimKey] = set()
        by_tier: dict[StorageTier, list[str]] = {}
        for tier, key in keys:
            by_tier.setdefault(tier, []).append(key)
        for tier, names in by_tier.items():
            try:
                existing = yield _DB("find_existing_paths", (tier, names))
            except NotImplementedError:
                existing = set()
            except Exception:
                logger.warning("s3strata: could not check for records in %s; keeping the objects.", tier.value, exc_info=True)
                continue
            out.update((tier, k) for k in names if k not in existing)
        return out

    # -- upload --------------------------------------------------------------------

    def upload(self, data: DataSource, options: UploadOptions | None) -> Op[PhysicalFile]:
        o = options or UploadOptions()
        tier = parse_tier(o.tier if o.tier is not None else self.advanced.default_storage_tier)
        visibility = parse_visibility(o.visibility if o.visibility is not None else self.advanced.default_visibility)
        duration = _seconds(o.hot_duration, "hot_duration")
        filename = clean_filename(o.filename) if o.filename is not None else str(uuid.uuid4())
        suffix = validate_suffix(o.path_suffix) if o.path_suffix is not None else default_suffix(filename)
        key = build_key(self.store.tier(tier), visibility, suffix)
        from .contenttypes import parse_content_type, write_disposition

        # Checked before any byte is sent: one strict type, and active content per the settings.
        content_type = parse_content_type(o.content_type) if o.content_type else guess_content_type(filename)
        disposition = write_disposition(content_type, filename, self.advanced.active_content)
        size = _payload_size(data)
        stored: ObjectInfo = yield _S3(
            self.store.put,
            (tier, key, data),
            {"content_type": content_type, "content_disposition": disposition, "max_size": self.advanced.max_file_size},
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
        except Exception:
            # Only remove the object when no record can be pointing at it (a create may commit and still raise).
            if (yield from self._no_record_at(tier, key)):
                yield from self._discard(tier, key, "its record was not created")
            raise
        return record

    # -- moves ---------------------------------------------------------------------

    def _copy(self, file: PhysicalFile, plan: _Plan, owner: str | None, taken: float | None = None) -> Op[Copied]:
        """Copy and verify; on failure remove the partial copy (under our claim, and unless a record points at it)."""
        src, src_key, dst, dst_key = plan.src, plan.src_key, plan.dst, plan.dst_key
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
                return Copied(file, src, src_key, dst, dst_key, plan.changes, source.size)
            except Exception as exc:
                if from_record and _describes_another_object(exc):
                    # The object changed or went away since its record was written: read it and copy again.
                    logger.info("s3strata: %s is not the object its record describes (%s); reading it first.", src_key, exc)
                    source = None
                    continue
                # Only under our own claim: another writer holding the key may be copying to it right now.
                if (yield from self._still_mine(owner, [(dst, dst_key)], taken)) and (
                    yield from self._no_record_at(dst, dst_key, file.id)
                ):
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
        except Exception:
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
        elif (yield from self._after_commit(c.src, c.src_key)):
            pass  # the commit is the caller's transaction's: the source goes when it commits
        elif (c.src, c.src_key) in (yield from self._unreferenced([(c.src, c.src_key)])):
            yield from self._discard(c.src, c.src_key, "stale source copy after a move")
        # Records that carry a size (the Django model does) learn it from the verified copy.
        if getattr(committed, "size", False) is None:
            committed.size = c.size  # type: ignore[attr-defined]
        return committed

    def _move(self, file: PhysicalFile, plan: _Plan, owner: str | None, taken: float | None = None) -> Op[PhysicalFile]:
        """Copy, verify, commit, then delete the source (the caller holds the claims of ``owner`` since ``taken``)."""
        copied = yield from self._copy(file, plan, owner, taken)
        if not (yield from self._still_mine(owner, plan.keys, taken)):
            # Our claim expired and another writer holds a key now: it decides; our copy is left to the sweep.
            why = f"the claim on file {file.id!r} expired during its copy; nothing committed."
            raise ConflictError(file.id, plan.src_key, why)
        committed = yield from self._commit(copied)
        return (yield from self._settle(copied, committed, None))

    def _refuse_taken(self, file: PhysicalFile, keys: list[ClaimKey]) -> Op[None]:
        """Raise ConflictError when a record already points at a destination: copying there would overwrite its file."""
        free = yield from self._unreferenced(keys)
        for tier, key in keys:
            if (tier, key) not in free:
                raise ConflictError(
                    file.id, file.path, f"{key!r} in {tier.value} belongs to another record; file {file.id!r} was not moved."
                )

    def _claimed_move(self, file: PhysicalFile, plan_for: Callable[[PhysicalFile], _Plan | None]) -> Op[PhysicalFile]:
        """Claim the move's keys, re-read the record, and move it from where it really is now."""
        owner = claim_owner()
        current = file
        for _ in range(8):
            plan = plan_for(current)
            if plan is None:
                return current
            if not (yield from self._claim(owner, plan.keys)):
                return (yield from self._move(current, plan, None))
            taken = time.monotonic()
            try:
                fresh: PhysicalFile | None = yield _DB("find_by_id", (current.id,))
                if fresh is not None and (parse_tier(fresh.storage_tier), fresh.path) == (plan.src, plan.src_key):
                    yield from self._refuse_taken(fresh, [(plan.dst, plan.dst_key)])
                    moved = yield from self._move(fresh, plan, owner, taken)
                    yield from self._release(owner, plan.keys)
                    return moved
            except Exception:
                yield from self._release(owner, plan.keys)
                raise
            yield from self._release(owner, plan.keys)
            if fresh is None:
                raise ConflictError(file.id, file.path, f"record {file.id!r} was deleted; nothing was moved.")
            current = fresh  # moved by another writer meanwhile: plan again from where it is now
        raise ConflictError(file.id, current.path, f"record {file.id!r} kept moving under this move; nothing was changed.")

    # -- archival in batches: claim all, copy each, commit all at once, delete the sources at once ---

    def _archive_plan(self, file: PhysicalFile) -> _Plan | None:
        current, visibility, suffix = self._location(file)
        if current is not StorageTier.HOT:
            return None
        new_key = build_key(self.store.tier(StorageTier.COLD), visibility, suffix)
        changes: dict[str, Any] = {"storage_tier": StorageTier.COLD, "hot_until": None}
        if new_key != file.path:
            changes["path"] = new_key
        return _Plan(current, file.path, StorageTier.COLD, new_key, changes)

    def claim_archive(self, files: list[PhysicalFile]) -> Op[ArchiveClaim]:
        """Claim a batch's keys with one adapter call; files another writer holds are left out."""
        owner = claim_owner()
        plans = [self._archive_plan(f) for f in files]
        keys = [k for p in plans if p is not None for k in p.keys]
        try:
            held: dict[ClaimKey, str] = (yield _DB("claim_keys", (owner, keys, self.advanced.claim_seconds))) if keys else {}
        except NotImplementedError:
            return ArchiveClaim(None, [], [f if p is not None else None for f, p in zip(files, plans, strict=True)])
        # One query for the batch: a destination some record already points at belongs to another file.
        free = yield from self._unreferenced([(p.dst, p.dst_key) for p in plans if p is not None])
        out: list[PhysicalFile | Exception | None] = []
        mine: list[ClaimKey] = []
        lost: list[ClaimKey] = []
        for f, p in zip(files, plans, strict=True):
            if p is None:
                out.append(None)
            elif (p.dst, p.dst_key) not in free:
                why = f"{p.dst_key!r} in COLD belongs to another record; file {f.id!r} was not archived."
                out.append(ConflictError(f.id, f.path, why))
                lost.extend(k for k in p.keys if k not in held)
            elif any(k in held for k in p.keys):
                holder = next(held[k] for k in p.keys if k in held)
                out.append(ConflictError(f.id, f.path, f"file {f.id!r} is being changed by {holder}; skipped.", holder=holder))
                lost.extend(k for k in p.keys if k not in held)
            else:
                out.append(f)
                mine.extend(p.keys)
        yield from self._release(owner, lost)
        return ArchiveClaim(owner, mine, out)

    def copy_for_archive(self, file: PhysicalFile, owner: str | None = None, taken: float | None = None) -> Op[Copied | None]:
        """Copy one HOT file to COLD and verify it, uncommitted; None when it is not HOT."""
        plan = self._archive_plan(file)
        if plan is None:
            return None
        return (yield from self._copy(file, plan, owner, taken))

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

    def finish_archive(
        self, copies: list[Copied | Exception | None], claim: ArchiveClaim | None = None
    ) -> Op[list[PhysicalFile | Exception | None]]:
        """Commit a batch's copies at once, delete their sources at once, release the batch's claims."""
        owner = claim.owner if claim is not None else None
        pending = [c for c in copies if isinstance(c, Copied)]
        if (
            claim is not None
            and owner is not None
            and pending
            and time.monotonic() - claim.taken >= self.advanced.claim_seconds / 2
        ):
            # One renewal for a long batch: a copy whose claim expired and was taken is not committed.
            held = yield _DB("claim_keys", (owner, [k for c in pending for k in c.keys], self.advanced.claim_seconds))
            if held:
                lost = {id(c) for c in pending if any(k in held for k in c.keys)}
                copies = [
                    ConflictError(c.file.id, c.src_key, f"the claim on file {c.file.id!r} expired during its copy.")
                    if isinstance(c, Copied) and id(c) in lost
                    else c
                    for c in copies
                ]
                pending = [c for c in pending if id(c) not in lost]
        stale: list[str] = []
        committed = iter((yield from self.commit_archived(pending, stale)))
        yield from self.delete_stale(StorageTier.HOT, stale)
        if claim is not None:
            yield from self._release(owner, claim.keys)
        return [next(committed) if isinstance(c, Copied) else c for c in copies]

    def delete_stale(self, tier: StorageTier, keys: list[str]) -> Op[None]:
        """Delete the stale source copies of committed moves in bulk (those no record points at)."""
        if not keys:
            return
        free = yield from self._unreferenced([(tier, k) for k in keys])
        keys = [k for k in keys if (tier, k) in free]
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
        target = parse_visibility(options.visibility)

        def plan_for(record: PhysicalFile) -> _Plan | None:
            tier, current, suffix = self._location(record)
            if current is target:
                return None
            new_key = build_key(self.store.tier(tier), target, suffix)
            return _Plan(tier, record.path, tier, new_key, {"path": new_key})

        plan = plan_for(file)
        if plan is None:
            return file
        if not options.move_file:
            updated: PhysicalFile = yield _DB("update", (file.id,), {"path": plan.dst_key})
            return updated
        return (yield from self._claimed_move(file, plan_for))

    def set_tier(self, file: PhysicalFile, options: SetTierOptions) -> Op[PhysicalFile]:
        target = parse_tier(options.tier)
        duration = _seconds(options.hot_duration, "hot_duration")

        def plan_for(record: PhysicalFile) -> _Plan | None:
            current, visibility, suffix = self._location(record)
            if current is target:
                return None
            # The suffix is kept; the prefix is the target tier's (the same unless tiers have custom prefixes).
            new_key = build_key(self.store.tier(target), visibility, suffix)
            changes: dict[str, Any] = {"storage_tier": target}
            if new_key != record.path:
                changes["path"] = new_key
            if target is StorageTier.COLD:
                changes["hot_until"] = None
            elif duration is not None:
                changes["hot_until"] = _now() + timedelta(seconds=duration)
            return _Plan(current, record.path, target, new_key, changes)

        plan = plan_for(file)
        if plan is None:
            return file
        if options.move_file:
            updated = yield from self._claimed_move(file, plan_for)
        else:
            updated = yield _DB("update", (file.id,), plan.changes)
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
        """Delete the record, then its object, under the object's claim (the record as it is now)."""
        owner = claim_owner()
        current = file
        for _ in range(8):
            tier = parse_tier(current.storage_tier, what="storage_tier")
            key = current.path
            if not (yield from self._claim(owner, [(tier, key)])):
                # Record first: a failure in between leaves an orphan object, never a record pointing at nothing.
                yield _DB("delete", (current.id,))
                yield from self._discard(tier, key, "its record was deleted")
                return
            try:
                fresh: PhysicalFile | None = yield _DB("find_by_id", (current.id,))
                here = fresh is None or (parse_tier(fresh.storage_tier), fresh.path) == (tier, key)
                if here:
                    if fresh is not None:
                        yield _DB("delete", (current.id,))
                    if (yield from self._after_commit(tier, key)):
                        pass  # inside the caller's transaction: the object goes when it commits, stays on rollback
                    elif (tier, key) in (yield from self._unreferenced([(tier, key)])):
                        yield from self._discard(tier, key, "its record was deleted")
            except Exception:
                yield from self._release(owner, [(tier, key)])
                raise
            yield from self._release(owner, [(tier, key)])
            if here:
                return
            assert fresh is not None
            current = fresh  # moved meanwhile: delete it where it is now
        raise ConflictError(file.id, current.path, f"record {file.id!r} kept moving; it was not deleted.")

    def delete_object(self, tier: StorageTier, key: str, wait: float | None = 0) -> Op[bool]:
        """Delete the object at (tier, key) under its claim when no record points at it; return True if deleted.

        What a deleted record's object goes through after its transaction commits, and what the orphan
        sweep does with each orphan. Another writer's claim makes it skip (``wait=0``) or wait.
        """
        owner = claim_owner()
        try:
            claimed = yield from self._claim(owner, [(tier, key)], wait)
        except ConflictError:
            return False
        try:
            if (tier, key) not in (yield from self._unreferenced([(tier, key)])):
                done = False
            else:
                yield _S3(self.store.delete, (tier, key))
                done = True
        except Exception:
            yield from self._release(owner if claimed else None, [(tier, key)])
            raise
        yield from self._release(owner if claimed else None, [(tier, key)])
        return done

    def _siblings(self, tier: StorageTier, key: str) -> list[ClaimKey]:
        """Return the other keys the same file could have: each tier and visibility with this key's suffix."""
        try:
            _, suffix = split_key(self.store.tier(tier), key)
        except S3StrataError:
            return []
        return [
            (t, build_key(self.store.tier(t), v, suffix))
            for t in StorageTier
            for v in FileVisibility
            if (t, build_key(self.store.tier(t), v, suffix)) != (tier, key)
        ]

    def adopt_object(
        self, tier: StorageTier, key: str, filename: str, hot_until: datetime | None, wait: float | None = 0
    ) -> Op[PhysicalFile | None]:
        """Create the record of the object at (tier, key) under its claim; None when it is not an orphan.

        Not an orphan: a record points at it, another writer holds it, it is gone, or it is a stale
        copy of a file that has a record under another tier or visibility (adopting it would give
        one file two records; the sweep deletes such copies instead). The record is written with
        what a HEAD answers (size, content type, ETag) in one write.
        """
        owner = claim_owner()
        try:
            claimed = yield from self._claim(owner, [(tier, key)], wait)
        except ConflictError:
            return None
        record: PhysicalFile | None = None
        try:
            free = yield from self._unreferenced([(tier, key), *self._siblings(tier, key)])
            if len(free) == 1 + len(self._siblings(tier, key)):
                info: ObjectInfo | None = yield _S3(self.store.head, (tier, key))
                if info is not None:
                    fields = {"storage_tier": tier, "filename": filename, "path": key, "hot_until": hot_until}
                    try:
                        record = yield _DB("create_stored", (), {**fields, "stored": info})
                    except NotImplementedError:
                        record = yield _DB("create", (), fields)
        except Exception:
            yield from self._release(owner if claimed else None, [(tier, key)])
            raise
        yield from self._release(owner if claimed else None, [(tier, key)])
        return record

    def relocate(self, file: PhysicalFile, tier: StorageTier, key: str) -> Op[PhysicalFile | None]:
        """Point the record at the object found at (tier, key), under both keys' claims; None if it changed meanwhile.

        Verify's repair: the object sits in the other tier (a move's commit was lost). Only while
        the record is still where it was found and the object is still there.
        """
        owner = claim_owner()
        keys: list[ClaimKey] = [(parse_tier(file.storage_tier), file.path), (tier, key)]
        try:
            claimed = yield from self._claim(owner, keys, 0)
        except ConflictError:
            return None
        try:
            updated: PhysicalFile | None = None
            if (yield _S3(self.store.head, (tier, key))) is not None:
                changes: dict[str, Any] = {"storage_tier": tier, "path": key, "hot_until": None}
                try:
                    updated = yield _DB("update_if", (file.id, keys[0][0], keys[0][1]), changes)
                except NotImplementedError:
                    updated = None
        except Exception:
            yield from self._release(owner if claimed else None, keys)
            raise
        yield from self._release(owner if claimed else None, keys)
        return updated

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
                if not o.dry_run and not (yield from self.delete_object(orphan.tier, orphan.key)):
                    return  # another writer holds it, or a record points at it now
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
                record = yield from self.adopt_object(orphan.tier, orphan.key, filename, hot_until)
                if record is None:
                    return  # not an orphan any more, held by another writer, or a stale copy of a file with a record
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
        self._ops = _Operations(config, self.objectstore)
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
            self._sync = SyncFileManager(self, sync_adapter)
        return self._sync

    def _pool(self, bulk: bool = False) -> ThreadPoolExecutor:
        if self._executor is None or self._bulk_executor is None or self._executor_pid != os.getpid():
            size = self.config.advanced.max_concurrency
            self._executor = ThreadPoolExecutor(size, thread_name_prefix="s3strata")
            self._bulk_executor = ThreadPoolExecutor(_bulk_threads(self.config.advanced), thread_name_prefix="s3strata-bulk")
            self._executor_pid = os.getpid()
        return self._bulk_executor if bulk else self._executor

    async def _drive(self, op: Op[T]) -> T:
        loop = asyncio.get_running_loop()
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                done, step = _advance(op, value, error)
                if done:
                    return cast(T, step)
                value, error = None, None
                try:
                    if isinstance(step, _S3):
                        pool = self._pool(step.bulk)
                        value = await loop.run_in_executor(pool, functools.partial(step.fn, *step.args, **step.kwargs))
                    elif isinstance(step, _Sleep):
                        await asyncio.sleep(step.seconds)
                    else:
                        method = getattr(self.adapter, step.method, None)
                        if method is None:
                            raise NotImplementedError(step.method)
                        value = await method(*step.args, **step.kwargs)
                except Exception as exc:
                    error = exc
        finally:
            # Stopped early (the loop cancelled this task): no cleanup step runs, claims expire, a copy is an orphan.
            op.close()

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
        try:
            while True:
                done, step = _advance(op, value, error)
                if done:
                    return cast(T, step)
                value, error = None, None
                try:
                    if isinstance(step, _S3):
                        value = step.fn(*step.args, **step.kwargs)
                    elif isinstance(step, _Sleep):
                        time.sleep(step.seconds)
                    else:
                        method = getattr(self.adapter, step.method, None)
                        if method is None:
                            raise NotImplementedError(step.method)
                        value = method(*step.args, **step.kwargs)
                except Exception as exc:
                    error = exc
        finally:
            # Interrupted (KeyboardInterrupt, SystemExit): close the generator; no cleanup step runs.
            op.close()

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
