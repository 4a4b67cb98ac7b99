"""Orphans: objects under the configured prefixes that no record points at; listing, deleting, adopting."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from .adapters import ClaimKey, SyncStorageAdapter
from .claims import OpsBase, claim_owner, seconds
from .config import parse_tier
from .exceptions import ConflictError, InvalidKeyError, InvalidOptionError, S3StrataError
from .keys import build_key, check_key, clean_filename, split_key
from .steps import Op, S3Call, db, now
from .types import (
    AdoptOrphanOptions,
    AdoptOrphanResult,
    AllBucketObjects,
    BucketObjects,
    DeleteOrphanOptions,
    DeleteOrphanResult,
    FileVisibility,
    ObjectInfo,
    OrphanObject,
    PhysicalFile,
    S3Object,
    StorageTier,
)

logger = logging.getLogger(__name__)


def paths_of(records: Iterable[PhysicalFile]) -> set[tuple[StorageTier, str]]:
    """Return the (tier, path) pairs of ``records``."""
    return {(StorageTier(r.storage_tier), r.path) for r in records}


def _next_page(pages: Iterator[list[S3Object]]) -> list[S3Object] | None:
    return next(pages, None)


#: What an orphan sweep may do with each orphan.
ORPHAN_ACTIONS = ("report", "delete", "adopt")


@dataclass(frozen=True)
class OrphanPolicy:
    """What an orphan sweep does: the action, which orphans (grace period, prefix, tier), and how.

    The core API, the Django sweep (task and command) and the admin's orphans page all run the
    same engine with a policy; the action on each orphan runs under its key's claim and re-checks
    there that no record points at it.
    """

    #: "report" (list only), "delete" or "adopt".
    action: str = "report"
    #: Leave alone objects younger than this many seconds; None: ``orphan_grace_period``; 0: none.
    grace_period: int | None = None
    #: Report what the action would do, and do nothing.
    dry_run: bool = False
    prefix: str | None = None
    tier: StorageTier | str | None = None
    #: Adopt: HOT files expire this many seconds after adoption (None: never).
    hot_duration: int | None = None
    #: Adopt: the file name for a key (default: its last segment).
    extract_filename: Callable[[str], str] | None = None
    #: Seconds to wait for another writer's claim on a key before skipping it (None: ``claim_wait``).
    wait: float | None = 0


@dataclass
class OrphanOutcome:
    """What happened to one orphan: "found" (report or dry run), "deleted", "adopted", "skipped", "refused" or "failed"."""

    orphan: OrphanObject
    action: str
    #: The record an adoption created.
    record: PhysicalFile | None = None
    #: Why it failed, was skipped or refused (when known).
    error: str | None = None


class OrphanOps(OpsBase):
    """Listings and orphans, as step generators."""

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
            free = yield from self._unreferenced([(tier, key), *self._siblings(tier, key)], strict=True)
            if len(free) == 1 + len(self._siblings(tier, key)):
                info: ObjectInfo | None = yield S3Call(self.store.head, (tier, key))
                if info is not None:
                    record = yield from self._create(tier, filename, key, hot_until, info)
        except Exception:
            yield from self._release(owner if claimed else None, [(tier, key)])
            raise
        yield from self._release(owner if claimed else None, [(tier, key)])
        return record

    # -- listings and orphans --------------------------------------------------------

    def list_all_objects(self, prefix: str | None) -> Op[AllBucketObjects]:
        buckets = []
        for tier in StorageTier:
            objects: list[S3Object] = []
            pages = self.store.iter_pages(tier, prefix)
            while (page := (yield S3Call(_next_page, (pages,)))) is not None:
                objects.extend(page)
            buckets.append(BucketObjects(tier, self.store.tier(tier).bucket, objects, len(objects)))
        hot, cold = buckets
        return AllBucketObjects(hot, cold, hot.count + cold.count, now())

    def orphans(
        self,
        prefix: str | None,
        tier: StorageTier | str | None,
        grace_period: int | None,
        visit: Callable[[OrphanObject], Op[None]],
    ) -> Op[None]:
        """Stream each tier's listing page by page, and visit each orphan (checked in bulk per page)."""
        tiers = [parse_tier(tier)] if tier is not None else list(StorageTier)
        grace = seconds(grace_period, "grace_period")
        cutoff = now() - timedelta(seconds=grace) if grace else None
        known: set[tuple[StorageTier, str]] | None = None
        for t in tiers:
            bucket = self.store.tier(t).bucket
            for scan in self.store.layout.scan_prefixes(t, prefix):
                pages = self.store.iter_pages(t, scan, read_ahead=True)
                while (page := (yield S3Call(_next_page, (pages,)))) is not None:
                    if not page:
                        continue
                    keys = [o.key for o in page]
                    if self.features.find_existing_paths:
                        existing = yield from db(SyncStorageAdapter.find_existing_paths, t, keys)
                    else:
                        if known is None:
                            # Without a lookup by path: every record, read once for the whole scan.
                            known = paths_of((yield from db(SyncStorageAdapter.find_all)))
                        existing = {k for k in keys if (t, k) in known}
                    for obj in page:
                        if obj.key in existing or not _older(obj.last_modified, cutoff):
                            continue
                        yield from visit(
                            OrphanObject(obj.key, obj.last_modified, obj.size, obj.etag, obj.storage_class, t, bucket)
                        )

    # -- the orphan engine: one policy, one implementation for every caller ------------

    def _grace(self, policy: OrphanPolicy) -> int:
        grace = policy.grace_period if policy.grace_period is not None else self.advanced.orphan_grace_period
        return seconds(grace, "grace_period") or 0

    def act_on_orphan(self, orphan: OrphanObject, policy: OrphanPolicy) -> Op[OrphanOutcome]:
        """Do the policy's action to one orphan, under its key's claim and re-checked there; never raise."""
        if policy.action == "report" or policy.dry_run:
            return OrphanOutcome(orphan, "found")
        try:
            if policy.action == "delete":
                deleted = yield from self.delete_object(orphan.tier, orphan.key, policy.wait)
                # Not deleted: another writer holds it, or a record points at it now.
                return OrphanOutcome(orphan, "deleted" if deleted else "skipped")
            extract = policy.extract_filename or (lambda key: key.rsplit("/", 1)[-1])
            filename = clean_filename(extract(orphan.key))
            duration = seconds(policy.hot_duration, "hot_duration")
            hot_until = now() + timedelta(seconds=duration) if orphan.tier is StorageTier.HOT and duration is not None else None
            record = yield from self.adopt_object(orphan.tier, orphan.key, filename, hot_until, policy.wait)
            # None: not an orphan any more, held by another writer, or a stale copy of a file with a record.
            return OrphanOutcome(orphan, "adopted" if record is not None else "skipped", record)
        except Exception as exc:
            logger.warning("s3strata: could not %s orphan %s in %s: %s", policy.action, orphan.key, orphan.tier.value, exc)
            return OrphanOutcome(orphan, "failed", error=str(exc))

    def sweep_orphans(self, policy: OrphanPolicy, visit: Callable[[OrphanOutcome], None]) -> Op[None]:
        """Stream the listings and act on each orphan older than the grace period; ``visit`` sees each outcome."""
        _check_action(policy)

        def act(orphan: OrphanObject) -> Op[None]:
            visit((yield from self.act_on_orphan(orphan, policy)))

        yield from self.orphans(policy.prefix, policy.tier, self._grace(policy), act)

    def sweep_orphan_keys(
        self, policy: OrphanPolicy, tier: StorageTier, keys: list[str], visit: Callable[[OrphanOutcome], None]
    ) -> Op[None]:
        """Act on chosen keys (a person's selection): each must lie in the tier's prefixes, exist, and be old enough.

        The same action as a sweep's; a key that fails a check is visited as "refused" (outside the
        tier's prefixes, or outside the policy's own ``tier`` and ``prefix``) or "skipped" (gone, or
        younger than the grace period), with the reason.
        """
        _check_action(policy)
        cutoff = now() - timedelta(seconds=self._grace(policy))
        resolved = self.store.tier(tier)
        for key in dict.fromkeys(keys):
            try:
                check_key(resolved, key)
                _within_policy(policy, tier, key)
            except S3StrataError as exc:
                visit(OrphanOutcome(OrphanObject(key, None, None, None, None, tier, resolved.bucket), "refused", error=str(exc)))
                continue
            info: ObjectInfo | None = yield S3Call(self.store.head, (tier, key))
            if info is None or not _older(info.last_modified, cutoff):
                gone = OrphanObject(key, None, None, None, None, tier, resolved.bucket)
                visit(OrphanOutcome(gone, "skipped", error="no longer an orphan old enough"))
                continue
            orphan = OrphanObject(key, info.last_modified, info.size, info.etag, None, tier, resolved.bucket)
            visit((yield from self.act_on_orphan(orphan, policy)))

    # -- upstream's orphan API, on the engine -------------------------------------------

    def list_orphan_objects(self, prefix: str | None, tier: StorageTier | str | None = None) -> Op[list[OrphanObject]]:
        found: list[OrphanObject] = []
        yield from self.sweep_orphans(OrphanPolicy(grace_period=0, prefix=prefix, tier=tier), lambda o: found.append(o.orphan))
        return found

    def delete_orphan_objects(self, options: DeleteOrphanOptions | None) -> Op[DeleteOrphanResult]:
        opts = options or DeleteOrphanOptions()
        result = DeleteOrphanResult(0, 0, [], [], opts.dry_run)

        def tally(outcome: OrphanOutcome) -> None:
            if outcome.action in ("deleted", "found"):
                result.deleted += 1
                result.deleted_paths.append(outcome.orphan.key)
            elif outcome.action == "failed":
                result.failed += 1
                result.errors.append(
                    {"path": outcome.orphan.key, "tier": outcome.orphan.tier.value, "error": outcome.error or ""}
                )

        policy = OrphanPolicy("delete", opts.grace_period, opts.dry_run, opts.prefix, opts.tier)
        yield from self.sweep_orphans(policy, tally)
        return result

    def adopt_orphan_objects(self, options: AdoptOrphanOptions | None) -> Op[AdoptOrphanResult]:
        opts = options or AdoptOrphanOptions()
        duration = seconds(opts.hot_duration, "hot_duration") if opts.set_hot_until else None
        result = AdoptOrphanResult(0, 0, [])

        def tally(outcome: OrphanOutcome) -> None:
            if outcome.action == "adopted" and outcome.record is not None:
                result.adopted += 1
                result.adopted_file_ids.append(outcome.record.id)
            elif outcome.action == "failed":
                result.failed += 1
                result.errors.append(
                    {"path": outcome.orphan.key, "tier": outcome.orphan.tier.value, "error": outcome.error or ""}
                )

        policy = OrphanPolicy("adopt", opts.grace_period, False, opts.prefix, opts.tier, duration, opts.extract_filename)
        yield from self.sweep_orphans(policy, tally)
        return result


def _older(last_modified: datetime | None, cutoff: datetime | None) -> bool:
    """Return True when an object modified at ``last_modified`` is past the grace period ending at ``cutoff``."""
    return cutoff is None or (last_modified is not None and last_modified <= cutoff)


def _within_policy(policy: OrphanPolicy, tier: StorageTier, key: str) -> None:
    """Raise InvalidKeyError when the policy names a tier or prefix and ``key`` in ``tier`` is outside them."""
    if policy.tier is not None and parse_tier(policy.tier) is not tier:
        raise InvalidKeyError(f"{key!r} is in {tier.value}; the policy acts on {parse_tier(policy.tier).value} only.")
    if policy.prefix and not key.startswith(policy.prefix):
        raise InvalidKeyError(f"{key!r} is outside the policy's prefix {policy.prefix!r}.")


def _check_action(policy: OrphanPolicy) -> None:
    if policy.action not in ORPHAN_ACTIONS:
        raise InvalidOptionError(f"action must be one of {', '.join(map(repr, ORPHAN_ACTIONS))}, not {policy.action!r}.")
