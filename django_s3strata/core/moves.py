"""Moves: copy, verify, commit (compare-and-set on the record's location), then delete the source."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .adapters import ClaimKey, SyncStorageAdapter
from .claims import OpsBase, claim_owner, seconds
from .config import parse_tier, parse_visibility
from .exceptions import ConflictError, InvalidOptionError, S3StrataError, VerificationError
from .keys import build_key
from .s3errors import plain_md5
from .steps import BULK_BYTES, Op, S3Call, db, now
from .types import (
    ObjectInfo,
    PhysicalFile,
    SetHotDurationOptions,
    SetTierOptions,
    SetVisibilityOptions,
    StorageTier,
)

logger = logging.getLogger(__name__)


#: What S3 answers a copy pinned to a recorded ETag when the object is no longer that version.
_STALE_RECORD = {"PreconditionFailed", "412", "NoSuchKey", "404", "NotFound"}


def _describes_another_object(exc: BaseException) -> bool:
    """True when a copy pinned to a record's ETag failed because the object is not that version any more."""
    return isinstance(exc, VerificationError) or (isinstance(exc, S3StrataError) and getattr(exc, "code", None) in _STALE_RECORD)


def _usable_etag(file: PhysicalFile) -> bool:
    """True when the record holds an MD5-shaped ETag: a copy can be pinned to it (after a HEAD, if in parts)."""
    etag = getattr(file, "etag", None)
    return isinstance(etag, str) and plain_md5(etag)


def _recorded_source(file: PhysicalFile, key: str, part_copy_threshold: int) -> ObjectInfo | None:
    """Return the object as the record knows it (records with ``size`` and ``etag``), or None.

    Only where the tier's ETags are MD5s (the caller asks ``ObjectStore.etags_are_md5``): with
    SSE-KMS a record's ETag proves nothing about a copy, and a HEAD's checksum can.
    """
    size, etag = getattr(file, "size", None), getattr(file, "etag", None)
    if not isinstance(size, int) or isinstance(size, bool) or not isinstance(etag, str):
        return None
    if not plain_md5(etag):
        # Only an MD5 lets the copy's own ETag prove it, even on a server that ignores CopySourceIfMatch.
        return None
    if size > part_copy_threshold:
        return None  # a copy in parts reads the object's metadata anyway
    return ObjectInfo(key, size, etag, None, getattr(file, "content_type", None), None)


@dataclass
class Plan:
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
class Copied:
    """A verified copy waiting for its commit: the file, where it is and where it now also is."""

    file: PhysicalFile
    src: StorageTier
    src_key: str
    dst: StorageTier
    dst_key: str
    changes: dict[str, Any]
    #: The object's size, when the copy learned it (a copy not read first does not).
    size: int | None

    @property
    def keys(self) -> list[ClaimKey]:
        return [(self.src, self.src_key), (self.dst, self.dst_key)]


def _warn_cannot_clear(record: PhysicalFile) -> None:
    logger.warning(
        "s3strata: the storage adapter kept hot_until=%s on record %s after being asked to clear it; "
        "its update() must treat hot_until=None as 'clear' (see StorageAdapter).",
        record.hot_until,
        record.id,
    )


class MoveOps(OpsBase):
    """set_tier, set_visibility, set_hot_duration, delete and verify's relocate, as step generators."""

    # -- moves ---------------------------------------------------------------------

    def _copy(self, file: PhysicalFile, plan: Plan, owner: str | None, taken: float | None = None) -> Op[Copied]:
        """Copy and verify; on failure remove the partial copy (under our claim, and unless a record points at it)."""
        src, src_key, dst, dst_key = plan.src, plan.src_key, plan.dst, plan.dst_key
        streamed = not self.store.tier(src).same_location(self.store.tier(dst))
        md5 = self.store.etags_are_md5(src) and self.store.etags_are_md5(dst)
        threshold = self.advanced.part_copy_threshold
        # A record that knows the object's size and ETag saves the HEAD: the copy is pinned to that ETag.
        source = _recorded_source(file, src_key, threshold) if md5 else None
        # A record that knows no ETag (and no size above the part-copy threshold): copy first, ask later.
        # One CopyObject of whatever version is there (S3's own atomic operation) answers the copy's
        # ETag; only an object too large for one CopyObject needs a HEAD and the copy in parts.
        known_size = getattr(file, "size", None)
        large = isinstance(known_size, int) and known_size > threshold
        unread = source is None and md5 and not streamed and not large and not _usable_etag(file)
        while True:
            from_record = source is not None
            if source is None and not unread:
                source = yield S3Call(self.store.require, (src, src_key))
            try:
                if source is None:
                    unread = False
                    copy: ObjectInfo | None = yield S3Call(self.store.copy_unread, (src, src_key, dst, dst_key))
                    if copy is None:
                        continue  # above 5 GiB: read it, then copy in parts
                    size: int | None = None  # CopyObject does not say
                else:
                    copy = yield S3Call(
                        self.store.copy,
                        (src, src_key, dst, dst_key),
                        {"source": source},
                        bulk=streamed and source.size > BULK_BYTES,
                    )
                    size = source.size
                assert copy is not None
                changes = plan.changes
                if self.features.records_etag and getattr(file, "etag", None) != copy.etag:
                    # The record learns the copy's ETag (a new one with SSE-KMS, in parts, or when the record's was stale).
                    changes = {**changes, "etag": copy.etag}
                return Copied(file, src, src_key, dst, dst_key, changes, size)
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

    def _commit(self, copied: Copied) -> Op[PhysicalFile | None]:
        """Commit one copy's new location; return None when the record moved on meanwhile."""
        try:
            if "etag" in copied.changes:
                # Only update_many_if takes the ETag (AdapterFeatures.records_etag): a compare-and-set all the same.
                [committed] = yield from db(SyncStorageAdapter.update_many_if, [(copied.file, copied.changes)])
            elif self.features.update_if:
                # Compare-and-set: commit only while the record is still where this move found it.
                committed = yield from db(
                    SyncStorageAdapter.update_if, copied.file.id, copied.src, copied.src_key, **copied.changes
                )
            else:
                committed = yield from db(SyncStorageAdapter.update, copied.file.id, **copied.changes)
        except Exception:
            # The commit may or may not have happened: keep both copies; the sweep removes the stale one.
            logger.warning(
                "s3strata: record %s not updated after copying %s to %s; both copies kept.",
                copied.file.id,
                copied.src_key,
                copied.dst_key,
            )
            raise
        return committed

    def _settle(self, copied: Copied, committed: PhysicalFile | None, stale: list[str] | None) -> Op[PhysicalFile]:
        """After the commit: delete the source (or leave its key in ``stale``); after a lost race, the copy."""
        if committed is None:
            # Another move or a delete won the race: the source is theirs to handle; the copy is nobody's.
            if (yield from self._no_record_at(copied.dst, copied.dst_key)):
                yield from self._discard(copied.dst, copied.dst_key, "another writer moved the record first")
            raise ConflictError(copied.file.id, copied.src_key)
        if stale is not None:
            stale.append(copied.src_key)
        elif (yield from self._after_commit(copied.src, copied.src_key)):
            pass  # the commit is the caller's transaction's: the source goes when it commits
        elif (copied.src, copied.src_key) in (yield from self._unreferenced([(copied.src, copied.src_key)])):
            yield from self._discard(copied.src, copied.src_key, "stale source copy after a move")
        # Records that carry a size (the Django model does) learn it from the verified copy.
        if getattr(committed, "size", False) is None and copied.size is not None:
            committed.size = copied.size  # type: ignore[attr-defined]
        return committed

    def _move(self, file: PhysicalFile, plan: Plan, owner: str | None, taken: float | None = None) -> Op[PhysicalFile]:
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

    def _claimed_move(self, file: PhysicalFile, plan_for: Callable[[PhysicalFile], Plan | None]) -> Op[PhysicalFile]:
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
                fresh = yield from db(SyncStorageAdapter.find_by_id, current.id)
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

    def set_visibility(self, file: PhysicalFile, options: SetVisibilityOptions) -> Op[PhysicalFile]:
        target = parse_visibility(options.visibility)

        def plan_for(record: PhysicalFile) -> Plan | None:
            tier, current, suffix = self._location(record)
            if current is target:
                return None
            new_key = build_key(self.store.tier(tier), target, suffix)
            return Plan(tier, record.path, tier, new_key, {"path": new_key})

        plan = plan_for(file)
        if plan is None:
            return file
        if not options.move_file:
            updated = yield from db(SyncStorageAdapter.update, file.id, path=plan.dst_key)
            return updated
        return (yield from self._claimed_move(file, plan_for))

    def set_tier(self, file: PhysicalFile, options: SetTierOptions) -> Op[PhysicalFile]:
        target = parse_tier(options.tier)
        duration = seconds(options.hot_duration, "hot_duration")

        def plan_for(record: PhysicalFile) -> Plan | None:
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
                changes["hot_until"] = now() + timedelta(seconds=duration)
            return Plan(current, record.path, target, new_key, changes)

        plan = plan_for(file)
        if plan is None:
            return file
        if options.move_file:
            updated = yield from self._claimed_move(file, plan_for)
        else:
            updated = yield from db(SyncStorageAdapter.update, file.id, **plan.changes)
        if target is StorageTier.COLD and updated.hot_until is not None:
            _warn_cannot_clear(updated)
        return updated

    def set_hot_duration(self, file: PhysicalFile, options: SetHotDurationOptions) -> Op[PhysicalFile]:
        tier = parse_tier(file.storage_tier, what="storage_tier")
        if tier is not StorageTier.HOT:
            raise InvalidOptionError(f"set_hot_duration applies to HOT files only; file {file.id!r} is {tier.value}.")
        duration = seconds(options.duration, "duration")
        hot_until = None if duration is None else now() + timedelta(seconds=duration)
        updated = yield from db(SyncStorageAdapter.update, file.id, hot_until=hot_until)
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
                yield from db(SyncStorageAdapter.delete, current.id)
                yield from self._discard(tier, key, "its record was deleted")
                return
            try:
                fresh = yield from db(SyncStorageAdapter.find_by_id, current.id)
                here = fresh is None or (parse_tier(fresh.storage_tier), fresh.path) == (tier, key)
                if here:
                    if fresh is not None:
                        yield from db(SyncStorageAdapter.delete, current.id)
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
            # Only with a compare-and-set commit: a blind update could point a moved record at the wrong copy.
            if self.features.update_if and (yield S3Call(self.store.head, (tier, key))) is not None:
                updated = yield from db(SyncStorageAdapter.update_if, file.id, keys[0][0], keys[0][1], tier, key, None)
        except Exception:
            yield from self._release(owner if claimed else None, keys)
            raise
        yield from self._release(owner if claimed else None, keys)
        return updated
