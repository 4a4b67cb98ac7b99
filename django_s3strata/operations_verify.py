"""Verify: check each row's object (exists, in its tier, of its size and ETag) and repair rows pointing at the wrong tier."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from django.utils import timezone

from .conf import get_settings
from .core.exceptions import S3StrataError
from .core.keys import build_key, split_key
from .core.restore import ArchiveState, status_of
from .core.s3errors import plain_md5
from .core.types import StorageTier
from .models import PhysicalFile
from .operations_runs import Progress, RunSummary, close_thread_connections, no_progress
from .services import get_file_manager

__all__ = ["VerifySummary", "verify_files"]

logger = logging.getLogger(__name__)


@dataclass
class VerifySummary(RunSummary):
    """What a verify run found (and repaired)."""

    checked: int = 0
    ok: int = 0
    missing: list[dict[str, Any]] = field(default_factory=list)
    wrong_tier: list[dict[str, Any]] = field(default_factory=list)
    size_mismatch: list[dict[str, Any]] = field(default_factory=list)
    #: Rows whose object holds other bytes of the same size: both ETags are content MD5s and differ.
    changed: list[dict[str, Any]] = field(default_factory=list)
    #: Rows whose ETag is not the object's where no MD5 can tell other bytes from a stale row (SSE-KMS,
    #: uploads in parts, rows from before moves recorded their copy's ETag); ``repair`` records the object's.
    etag_mismatch: list[dict[str, Any]] = field(default_factory=list)
    repaired: int = 0
    etags_corrected: int = 0
    #: Rows whose object is archived (or readable) unlike what the row knows (docs/archive.md);
    #: ``repair`` records the object's state on the row.
    archive_unknown: list[dict[str, Any]] = field(default_factory=list)
    archive_recorded: int = 0
    duration: float = 0.0

    @property
    def problems(self) -> int:
        """Return how many rows are not as they should be (after repairs)."""
        tiers = len(self.missing) + len(self.size_mismatch) + len(self.wrong_tier) - self.repaired
        archive = len(self.archive_unknown) - self.archive_recorded
        return tiers + len(self.changed) + len(self.etag_mismatch) - self.etags_corrected + archive

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {**asdict(self), "problems": self.problems}


def verify_files(
    *, repair: bool = False, concurrency: int | None = None, progress: Progress = no_progress, config: str | None = None
) -> VerifySummary:
    """Check every row of configuration ``config`` (None: "default") against its object (HEAD, in parallel).

    It finds objects missing, in the other tier, of another size or ETag.

    With ``repair``, a row whose object sits in the other tier gets its tier corrected (the only
    repair that cannot lose anything), and a row whose ETag differs from its object's where the
    ETags are not content MD5s records the object's (its size matched). Rows under a lease (being
    archived) are skipped.
    """
    store = get_file_manager(config).objectstore
    summary = VerifySummary()
    started = time.monotonic()

    def check(record: PhysicalFile) -> tuple[PhysicalFile, str, Any]:
        tier = StorageTier(record.storage_tier)
        info = store.head(tier, record.path)
        if info is not None:
            if record.size is not None and info.size != record.size:
                return record, "size", info.size
            if record.etag and info.etag and record.etag != info.etag:
                # Two content MD5s that differ are other bytes; otherwise the row may only be stale.
                return record, "changed" if plain_md5(record.etag) and info.etag_md5 else "etag", info.etag
            found = status_of(info)
            known = record.restore_status
            # Only where the row would mislead: readable or not (a finished restore is the poll's to record).
            if found.retrievable != known.retrievable and known.state is not ArchiveState.RESTORING:
                return record, "archive", found
            return record, "ok", None
        other = StorageTier.COLD if tier is StorageTier.HOT else StorageTier.HOT
        try:
            visibility, suffix = split_key(store.tier(tier), record.path)
            other_key = build_key(store.tier(other), visibility, suffix)
        except S3StrataError:
            return record, "missing", None
        if store.head(other, other_key) is not None:
            return record, "tier", (other, other_key)
        return record, "missing", None

    workers = concurrency or get_settings(config).options["ARCHIVE_CONCURRENCY"]
    now = timezone.now()
    rows = PhysicalFile.objects.for_config(config).exclude(lease_until__gt=now).order_by("id")
    with ThreadPoolExecutor(workers, thread_name_prefix="s3strata-verify") as pool:
        batch: list[PhysicalFile] = []
        for record in rows.iterator(chunk_size=1000):
            batch.append(record)
            if len(batch) >= 1000:
                _verify_batch(pool, check, batch, summary, repair, progress)
                batch = []
        if batch:
            _verify_batch(pool, check, batch, summary, repair, progress)
        close_thread_connections(pool, workers)
    summary.duration = round(time.monotonic() - started, 3)
    logger.info(
        "s3strata: verified %d row(s): %d missing, %d in the other tier, %d size mismatches, %d repaired, "
        "%d changed, %d ETag mismatches (%d corrected)",
        summary.checked,
        len(summary.missing),
        len(summary.wrong_tier),
        len(summary.size_mismatch),
        summary.repaired,
        len(summary.changed),
        len(summary.etag_mismatch),
        summary.etags_corrected,
    )
    return summary


def _verify_batch(
    pool: ThreadPoolExecutor,
    check: Callable[[PhysicalFile], tuple[PhysicalFile, str, Any]],
    batch: list[PhysicalFile],
    summary: VerifySummary,
    repair: bool,
    progress: Progress,
) -> None:
    for record, outcome, detail in pool.map(check, batch):
        summary.checked += 1
        entry = {"id": record.pk, "tier": record.storage_tier, "path": record.path}
        if outcome == "ok":
            summary.ok += 1
        elif outcome == "size":
            summary.size_mismatch.append({**entry, "row_size": record.size, "object_size": detail})
        elif outcome in ("changed", "etag"):
            found = {**entry, "row_etag": record.etag, "object_etag": detail}
            (summary.changed if outcome == "changed" else summary.etag_mismatch).append(found)
            if outcome == "etag" and repair:
                # Only while the row is still where, and what, it was: a move in flight changes it.
                rows = PhysicalFile.objects.filter(pk=record.pk, storage_tier=record.storage_tier, path=record.path)
                summary.etags_corrected += rows.filter(etag=record.etag).update(etag=detail)
        elif outcome == "archive":
            summary.archive_unknown.append({**entry, "row_state": str(record.restore_status), "object_state": str(detail)})
            if repair:
                rows = PhysicalFile.objects.filter(pk=record.pk, storage_tier=record.storage_tier, path=record.path)
                summary.archive_recorded += rows.update(archive_state=detail.state.value, restore_expires=detail.expires)
        elif outcome == "tier":
            other, other_key = detail
            summary.wrong_tier.append({**entry, "found_in": other.value, "found_at": other_key})
            if repair:
                # Under both keys' claims, and only if the row did not change meanwhile (a move in flight would).
                fixed = get_file_manager(record.config).sync.relocate(record, other, other_key)  # type: ignore[arg-type]
                summary.repaired += fixed is not None
        else:
            summary.missing.append(entry)
        progress(1)
