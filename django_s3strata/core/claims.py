"""The writers' common ground: claims on object keys, record checks, and the claimed delete of one object."""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .adapters import AdapterFeatures, ClaimKey, SyncStorageAdapter
from .config import S3StrataConfig, parse_seconds, parse_tier
from .exceptions import ConflictError, S3StrataError
from .objectstore import ObjectStore
from .steps import Op, S3Call, Sleep, db
from .types import (
    FileId,
    FileVisibility,
    ObjectInfo,
    PhysicalFile,
    StorageTier,
)

logger = logging.getLogger(__name__)


def claim_owner() -> str:
    """Return a new claim owner: ``host:pid:token``, what a ConflictError names as the holder."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def seconds(value: object, what: str) -> int | None:
    """Return a duration in whole seconds, or None; bounded, so ``now + value`` never overflows after a write.

    Checked before any S3 write (config.MAX_DURATION, 100 years); one rule, shared with the Django faces.
    """
    return parse_seconds(value, what, allow_none=True)


class OpsBase:
    """What every operation shares: the config, the object store, the adapter's features, and claims."""

    def __init__(self, config: S3StrataConfig, store: ObjectStore, features: AdapterFeatures) -> None:
        self.config = config
        self.advanced = config.advanced
        self.store = store
        #: The adapter's optional methods (declared once, read when the manager is built).
        self.features = features
        #: The sync driver, for work an adapter runs after its open transaction commits.
        self.run_sync: Callable[[Op[Any]], Any] | None = None

    # -- helpers -------------------------------------------------------------------

    def _location(self, file: PhysicalFile) -> tuple[StorageTier, FileVisibility, str]:
        return self.store.layout.location(file)

    def _discard(self, tier: StorageTier, key: str, why: str) -> Op[None]:
        try:
            yield S3Call(self.store.delete, (tier, key))
        except S3StrataError:
            logger.warning(
                "s3strata: could not delete %s in %s (%s); the orphan sweep will.", key, tier.value, why, exc_info=True
            )

    def _no_record_at(self, tier: StorageTier, key: str, file_id: FileId | None = None) -> Op[bool]:
        """Return True only when it is certain that no record points at (tier, key)."""
        try:
            if file_id is not None:
                record = yield from db(SyncStorageAdapter.find_by_id, file_id)
                if record is not None and parse_tier(record.storage_tier) is tier and record.path == key:
                    return False
            if not self.features.find_existing_paths:
                # Without a lookup by path, only a move's own record (just checked) is known not to point there.
                return file_id is not None
            existing = yield from db(SyncStorageAdapter.find_existing_paths, tier, [key])
            return key not in existing
        except Exception:
            logger.warning(
                "s3strata: could not check for a record at %s in %s; keeping the object.", key, tier.value, exc_info=True
            )
            return False

    def _create(
        self, tier: StorageTier, filename: str, key: str, hot_until: datetime | None, stored: ObjectInfo
    ) -> Op[PhysicalFile]:
        """Create the record of the object just stored (or found); with what S3 answered where the adapter keeps it."""
        if self.features.create_stored:
            # Adapters that keep the size and ETag let later moves skip reading the object first.
            return (yield from db(SyncStorageAdapter.create_stored, tier, filename, key, hot_until, stored))
        return (yield from db(SyncStorageAdapter.create, tier, filename, key, hot_until))

    # -- claims: every writer of an object holds its key's claim while it writes ------

    def _claim(self, owner: str, keys: list[ClaimKey], wait: float | None = None) -> Op[bool]:
        """Claim ``keys`` for ``owner``, waiting up to ``wait`` seconds for other writers.

        Return True when claimed, False when the adapter keeps no claims (the compare-and-set
        commit is then the only guard). Raise ConflictError naming the holder when the keys stay
        claimed by another writer.
        """
        if not self.features.claims:
            return False
        deadline = time.monotonic() + (self.advanced.claim_wait if wait is None else wait)
        delay = 0.02
        while True:
            held = yield from db(SyncStorageAdapter.claim_keys, owner, keys, self.advanced.claim_seconds)
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
            yield Sleep(delay * random.uniform(0.5, 1.5))
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
            held = yield from db(SyncStorageAdapter.claim_keys, owner, keys, self.advanced.claim_seconds)
        except Exception:
            logger.warning("s3strata: could not renew the claims on %s; leaving them alone.", keys, exc_info=True)
            return False
        return not held

    def _release(self, owner: str | None, keys: list[ClaimKey]) -> Op[None]:
        if owner is None or not keys:
            return
        try:
            yield from db(SyncStorageAdapter.release_keys, owner, keys)
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
        if run is None or not self.features.run_after_commit:
            return False
        return (yield from db(SyncStorageAdapter.run_after_commit, lambda: run(self.delete_object(tier, key, None))))

    def _unreferenced(self, keys: list[ClaimKey], *, strict: bool = False) -> Op[set[ClaimKey]]:
        """Return the keys no record points at.

        Without ``find_existing_paths``: with ``strict`` (an object that may be any record's: an
        orphan to delete or adopt), every record is read to tell; otherwise all the keys are
        returned (a move's own stale source, or the object of the record it just deleted).
        """
        if strict and not self.features.find_existing_paths:
            try:
                known = {(StorageTier(r.storage_tier), r.path) for r in (yield from db(SyncStorageAdapter.find_all))}
            except Exception:
                logger.warning("s3strata: could not read the records; keeping the objects.", exc_info=True)
                return set()
            return {key for key in keys if key not in known}
        out: set[ClaimKey] = set()
        by_tier: dict[StorageTier, list[str]] = {}
        for tier, key in keys:
            by_tier.setdefault(tier, []).append(key)
        for tier, names in by_tier.items():
            if not self.features.find_existing_paths:
                out.update((tier, k) for k in names)
                continue
            try:
                existing = yield from db(SyncStorageAdapter.find_existing_paths, tier, names)
            except Exception:
                logger.warning("s3strata: could not check for records in %s; keeping the objects.", tier.value, exc_info=True)
                continue
            out.update((tier, k) for k in names if k not in existing)
        return out

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
            if (tier, key) not in (yield from self._unreferenced([(tier, key)], strict=True)):
                done = False
            else:
                yield S3Call(self.store.delete, (tier, key))
                done = True
        except Exception:
            yield from self._release(owner if claimed else None, [(tier, key)])
            raise
        yield from self._release(owner if claimed else None, [(tier, key)])
        return done
