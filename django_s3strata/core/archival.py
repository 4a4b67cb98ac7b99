"""Archival in batches: claim all, copy each, commit all at once, delete the sources at once."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from .adapters import ClaimKey, SyncStorageAdapter
from .claims import claim_owner
from .exceptions import ConflictError, S3StrataError
from .keys import build_key
from .moves import Copied, MoveOps, Plan
from .steps import Op, S3Call, db
from .types import (
    PhysicalFile,
    StorageTier,
)

logger = logging.getLogger(__name__)


@dataclass
class ArchiveClaim:
    """An archival batch's claims: their owner, the keys claimed, and per file the file (claimed),
    a ConflictError (another writer holds it) or None (not HOT)."""

    owner: str | None
    keys: list[ClaimKey]
    files: list[PhysicalFile | Exception | None]
    #: When the claims were taken (``time.monotonic()``).
    taken: float = field(default_factory=time.monotonic)


class ArchiveOps(MoveOps):
    """The archival batch's steps."""

    def _archive_plan(self, file: PhysicalFile) -> Plan | None:
        current, visibility, suffix = self._location(file)
        if current is not StorageTier.HOT:
            return None
        new_key = build_key(self.store.tier(StorageTier.COLD), visibility, suffix)
        changes: dict[str, Any] = {"storage_tier": StorageTier.COLD, "hot_until": None}
        if new_key != file.path:
            changes["path"] = new_key
        return Plan(current, file.path, StorageTier.COLD, new_key, changes)

    def claim_archive(self, files: list[PhysicalFile]) -> Op[ArchiveClaim]:
        """Claim a batch's keys with one adapter call; files another writer holds are left out."""
        owner = claim_owner()
        plans = [self._archive_plan(f) for f in files]
        keys = [k for p in plans if p is not None for k in p.keys]
        if not self.features.claims:
            return ArchiveClaim(None, [], [f if p is not None else None for f, p in zip(files, plans, strict=True)])
        held: dict[ClaimKey, str] = {}
        if keys:
            held = yield from db(SyncStorageAdapter.claim_keys, owner, keys, self.advanced.claim_seconds)
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
        results: list[PhysicalFile | Exception | None] = []
        if not self.features.update_many_if:
            for c in copied:
                try:
                    results.append((yield from self._commit(c)))
                except Exception as exc:
                    results.append(exc)
        else:
            try:
                moves = [(c.file, c.changes) for c in copied]
                results = list((yield from db(SyncStorageAdapter.update_many_if, moves)))
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
            held = yield from db(
                SyncStorageAdapter.claim_keys, owner, [k for c in pending for k in c.keys], self.advanced.claim_seconds
            )
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
            yield S3Call(self.store.delete_many, (tier, keys))
        except S3StrataError:
            logger.warning(
                "s3strata: could not delete %d stale source copies in %s; the orphan sweep will.",
                len(keys),
                tier.value,
                exc_info=True,
            )
