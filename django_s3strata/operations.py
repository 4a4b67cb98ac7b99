"""The engines behind tasks, commands and the admin: archival with leases, the orphan sweep, verify.

Archival claims expired HOT rows in short transactions (``SELECT ... FOR UPDATE SKIP LOCKED``
on PostgreSQL, a compare-and-set UPDATE elsewhere), marking each with a lease; no row lock is
held during S3 I/O. A claimed file is moved by exactly one worker; a crash leaves the lease to
expire, and the next run converges.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Q
from django.utils import timezone

from .conf import get_settings
from .core import direct
from .core.config import parse_tier
from .core.exceptions import ConflictError, S3StrataError
from .core.keys import build_key, split_key
from .core.manager import ArchiveClaim
from .core.types import OrphanObject, StorageTier
from .models import PhysicalFile
from .querysets import pk_in
from .services import get_file_manager

__all__ = [
    "ArchiveSummary",
    "OrphanSummary",
    "VerifySummary",
    "adopt_object",
    "archive_expired",
    "claim_expired",
    "sweep_orphans",
    "verify_files",
]

logger = logging.getLogger(__name__)
Progress = Callable[[int], None]


def _noop(n: int) -> None:
    return None


class _Summary:
    """A run's result, JSON-serialisable through ``as_dict`` (what tasks return and ``--json`` prints)."""

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return asdict(self)  # type: ignore[call-overload]


@dataclass
class ArchiveSummary(_Summary):
    """What an archival run did (JSON-serialisable through ``as_dict``)."""

    moved: int = 0
    skipped: int = 0
    failed: int = 0
    bytes_moved: int = 0
    duration: float = 0.0
    dry_run: bool = False
    would_move: list[int] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)


def _lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _claimable(now: Any) -> Q:
    return Q(storage_tier=StorageTier.HOT.value, hot_until__lte=now) & (Q(lease_until__isnull=True) | Q(lease_until__lt=now))


def claim_expired(owner: str, batch_size: int, lease_seconds: int, exclude: set[int] | None = None) -> list[PhysicalFile]:
    """Claim up to ``batch_size`` expired HOT rows for ``owner`` in one short transaction; return them."""
    now = timezone.now()
    lease = {"lease_owner": owner, "lease_until": now + timedelta(seconds=lease_seconds)}
    using = router.db_for_write(PhysicalFile)
    with transaction.atomic(using=using):
        candidates = PhysicalFile.objects.filter(_claimable(now)).exclude(id__in=exclude or ()).order_by("hot_until", "id")
        if connections[using].features.has_select_for_update_skip_locked:
            ids = list(candidates.select_for_update(skip_locked=True).values_list("id", flat=True)[:batch_size])
            PhysicalFile.objects.filter(pk_in(ids)).update(**lease)
        else:
            # Compare-and-set: the UPDATE re-checks that each row is still free, so one owner wins it.
            ids = list(candidates.values_list("id", flat=True)[:batch_size])
            PhysicalFile.objects.filter(_claimable(now), pk_in(ids)).update(**lease)
    return list(PhysicalFile.objects.filter(pk_in(ids), lease_owner=owner))


def _release(record: PhysicalFile, owner: str, **extra: Any) -> None:
    PhysicalFile.objects.filter(pk=record.pk, lease_owner=owner).update(lease_owner=None, lease_until=None, **extra)


def archive_expired(
    *,
    batch_size: int | None = None,
    concurrency: int | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    lease_seconds: int | None = None,
    progress: Progress = _noop,
) -> ArchiveSummary:
    """Move expired HOT files to COLD in claimed batches with bounded concurrency; return a summary."""
    opts = get_settings().options
    batch_size = batch_size or opts["ARCHIVE_BATCH_SIZE"]
    concurrency = concurrency or opts["ARCHIVE_CONCURRENCY"]
    lease_seconds = lease_seconds or opts["ARCHIVE_LEASE_SECONDS"]
    summary = ArchiveSummary(dry_run=dry_run)
    started = time.monotonic()
    if dry_run:
        ids = PhysicalFile.objects.expired().order_by("hot_until", "id").values_list("id", flat=True)
        summary.would_move = list(ids[:limit] if limit else ids)
        summary.duration = time.monotonic() - started
        return summary
    owner = _lease_owner()
    sync = get_file_manager().sync
    passed: set[Any] = set()

    def settle(batch: list[PhysicalFile], claim: ArchiveClaim, copying: list[Future[Any]]) -> None:
        # One commit for the batch (which clears the leases), one bulk delete of the sources, one release.
        outcomes = sync.finish_archive([f.result() for f in copying], claim)
        unsized = {}
        for record, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, PhysicalFile):
                summary.moved += 1
                summary.bytes_moved += outcome.size or 0
                if record.size is None and outcome.size is not None:  # learned from the verified copy
                    unsized[record.pk] = outcome.size
            elif outcome is None or isinstance(outcome, ConflictError):
                # Not HOT any more, or someone else moved or deleted it meanwhile: nothing to do here.
                summary.skipped += 1
                passed.add(record.pk)
                _release(record, owner)
            else:
                summary.failed += 1
                summary.failures.append({"id": record.pk, "path": record.path, "error": str(outcome)})
                logger.error("s3strata: archiving file %s (%s) failed: %s", record.pk, record.path, outcome)
                _release(record, owner)
            progress(1)
        _record_sizes(unsized)

    with ThreadPoolExecutor(concurrency, thread_name_prefix="s3strata-archive") as pool:
        pending: tuple[list[PhysicalFile], ArchiveClaim, list[Future[Any]]] | None = None
        while True:
            done = summary.moved + summary.failed + summary.skipped + (len(pending[0]) if pending else 0)
            room = batch_size if limit is None else min(batch_size, limit - done)
            # Files that failed, or that another writer holds, wait for the next run: claiming them again in
            # this one would only skip them again (a killed writer's claims last CLAIM_SECONDS).
            batch = (
                claim_expired(owner, room, lease_seconds, exclude=passed | {f["id"] for f in summary.failures})
                if room > 0
                else []
            )
            # Copy this batch while the previous one commits: the pool never waits for the database.
            # The batch's object keys are claimed in one call; files another writer holds are skipped.
            claim = sync.claim_archive(batch)
            copying = [
                pool.submit(sync.copy_for_archive, f, claim) if isinstance(f, PhysicalFile) else _done(f) for f in claim.files
            ]
            if pending is not None:
                settle(*pending)
            if not batch:
                break
            pending = (batch, claim, copying)
        _close_thread_connections(pool, concurrency)
    summary.duration = round(time.monotonic() - started, 3)
    logger.info(
        "s3strata: archival moved %d file(s) (%d bytes), skipped %d, failed %d in %.1fs",
        summary.moved,
        summary.bytes_moved,
        summary.skipped,
        summary.failed,
        summary.duration,
    )
    return summary


def _done(value: Any) -> Future[Any]:
    """Return a finished future holding ``value`` (a file left out of a batch's copies)."""
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def _record_sizes(sizes: dict[Any, int]) -> None:
    """Store sizes learned during archival: one UPDATE per size when few, else one ``bulk_update`` for all."""
    by_size: dict[int, list[Any]] = {}
    for pk, size in sizes.items():
        by_size.setdefault(size, []).append(pk)
    if len(by_size) > 3:
        PhysicalFile.objects.bulk_update([PhysicalFile(pk=pk, size=size) for pk, size in sizes.items()], ["size"])
        return
    for size, pks in by_size.items():
        PhysicalFile.objects.filter(pk_in(pks)).update(size=size)


def _close_thread_connections(pool: ThreadPoolExecutor, size: int) -> None:
    """Close the database connections the pool's threads opened (Django keeps one per thread).

    The barrier makes each of the ``size`` threads take exactly one of the closing tasks.
    """
    from django.db import connections

    barrier = threading.Barrier(size)

    def close(_: int) -> None:
        barrier.wait(timeout=30)
        connections.close_all()

    list(pool.map(close, range(size)))


@dataclass
class OrphanSummary(_Summary):
    """What an orphan sweep found and did."""

    mode: str
    found: int = 0
    deleted: int = 0
    adopted: int = 0
    #: Orphans left alone: another writer held them, a row appeared, or (adopt) a stale copy of a file with a row.
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    #: Multipart uploads started and never finished (abandoned direct uploads), and those aborted.
    unfinished_uploads: int = 0
    aborted_uploads: int = 0
    dry_run: bool = False
    duration: float = 0.0
    errors: list[dict[str, Any]] = field(default_factory=list)


def adopt_object(
    tier: StorageTier,
    key: str,
    size: int | None = None,
    content_type: str | None = None,
    *,
    filename: str | None = None,
    hot_until: datetime | None = None,
    etag: str | None = None,
    wait: float | None = 0,
) -> PhysicalFile:
    """Create the row for an existing object (filename: the key's last segment unless given) and return it.

    The row is written in one INSERT with what S3 answers for the object now (size, content type,
    ETag), under the key's claim; ``size``, ``content_type`` and ``etag`` are accepted for callers
    that read a listing, and ignored. Raise ConflictError when the object is not an orphan (a row
    points at it, another writer holds it, it is gone, or it is a stale copy of a file that has a
    row under another tier or visibility). ``wait``: seconds to wait for another writer's claim on
    the key (None: ``CLAIM_WAIT``).
    """
    record: PhysicalFile | None = get_file_manager().sync.adopt_object(tier, key, filename, hot_until, wait)  # type: ignore[assignment]
    if record is None:
        raise ConflictError(None, key, f"{key!r} in {StorageTier(tier).value} is not an orphan that can be adopted now.")
    return record


def sweep_orphans(
    mode: str = "report",
    *,
    prefix: str | None = None,
    tier: str | None = None,
    older_than: int | None = None,
    dry_run: bool = False,
    on_orphan: Callable[[OrphanObject, str], None] | None = None,
) -> OrphanSummary:
    """Stream both buckets and report, delete or adopt orphans older than the grace period.

    ``on_orphan(orphan, action)`` is called for each one (action: "found", "deleted", "adopted",
    "failed"), so callers can stream a report without holding the listing.
    """
    if mode not in ("report", "delete", "adopt"):
        raise ValueError(f"mode must be 'report', 'delete' or 'adopt', not {mode!r}")
    manager = get_file_manager()
    grace = older_than if older_than is not None else manager.config.advanced.orphan_grace_period
    summary = OrphanSummary(mode=mode, dry_run=dry_run)
    started = time.monotonic()
    sync, store = manager.sync, manager.objectstore

    def visit(orphan: OrphanObject) -> None:
        summary.found += 1
        summary.bytes += orphan.size or 0
        action = "found"
        try:
            # Each under the key's claim, re-checked: a move in flight or a new row makes it skip.
            if mode != "report" and not dry_run:
                act = sync.delete_object if mode == "delete" else sync.adopt_object
                action = ("deleted" if mode == "delete" else "adopted") if act(orphan.tier, orphan.key) else "skipped"
                setattr(summary, action, getattr(summary, action) + 1)
        except Exception as exc:
            summary.failed += 1
            summary.errors.append({"tier": orphan.tier.value, "key": orphan.key, "error": str(exc)})
            action = "failed"
        if on_orphan is not None:
            on_orphan(orphan, action)

    tiers = [parse_tier(tier)] if tier else list(StorageTier)
    sync.scan_orphans(visit, prefix=prefix, tier=tiers[0] if tier else None, grace_period=grace)
    _sweep_unfinished_uploads(
        store, tiers, prefix, grace, abort=mode == "delete" and not dry_run, abort_abandoned=not dry_run, summary=summary
    )
    summary.duration = round(time.monotonic() - started, 3)
    logger.info(
        "s3strata: orphan sweep (%s) found %d, deleted %d, adopted %d, failed %d; unfinished uploads %d, aborted %d",
        mode,
        summary.found,
        summary.deleted,
        summary.adopted,
        summary.failed,
        summary.unfinished_uploads,
        summary.aborted_uploads,
    )
    return summary


def _sweep_unfinished_uploads(
    store: Any,
    tiers: list[StorageTier],
    prefix: str | None,
    grace: int,
    *,
    abort: bool,
    abort_abandoned: bool,
    summary: OrphanSummary,
) -> None:
    """Count multipart uploads older than ``grace`` seconds (their parts cost storage) and abort some.

    With ``abort``, those are aborted; with ``abort_abandoned`` (every mode but a dry run), so is
    any upload that no ticket can finalize any more (``uploads.abandoned_after``): a client must
    not keep parts stored for free by starting uploads and walking away.
    """
    from .uploads import abandoned_after

    now = timezone.now()
    cutoff = now - timedelta(seconds=grace)
    abandoned = now - timedelta(seconds=abandoned_after())
    for t in tiers:
        r = store.tier(t)
        for root in (r.public_prefix + "/", r.private_prefix + "/"):
            if prefix and not (prefix.startswith(root) or root.startswith(prefix)):
                continue
            scan = prefix if prefix and prefix.startswith(root) else root
            for upload in direct.iter_pending_uploads(store, t, scan):
                stale = upload.initiated is None or upload.initiated <= cutoff
                dead = upload.initiated is None or upload.initiated <= abandoned
                if not (stale or dead):
                    continue
                summary.unfinished_uploads += 1
                if not ((abort and stale) or (abort_abandoned and dead)):
                    continue
                try:
                    direct.abort_multipart(store, t, upload.key, upload.upload_id)
                    summary.aborted_uploads += 1
                except S3StrataError as exc:
                    summary.failed += 1
                    summary.errors.append({"tier": t.value, "key": upload.key, "error": str(exc)})


@dataclass
class VerifySummary(_Summary):
    """What a verify run found (and repaired)."""

    checked: int = 0
    ok: int = 0
    missing: list[dict[str, Any]] = field(default_factory=list)
    wrong_tier: list[dict[str, Any]] = field(default_factory=list)
    size_mismatch: list[dict[str, Any]] = field(default_factory=list)
    repaired: int = 0
    duration: float = 0.0

    @property
    def problems(self) -> int:
        """Return how many rows are not as they should be (after repairs)."""
        return len(self.missing) + len(self.size_mismatch) + len(self.wrong_tier) - self.repaired

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        return {**asdict(self), "problems": self.problems}


def verify_files(*, repair: bool = False, concurrency: int | None = None, progress: Progress = _noop) -> VerifySummary:
    """Check every row's object (HEAD, in parallel): missing, in the other tier, or of another size.

    With ``repair``, a row whose object sits in the other tier gets its tier corrected (the only
    repair that cannot lose anything). Rows under a lease (being archived) are skipped.
    """
    store = get_file_manager().objectstore
    summary = VerifySummary()
    started = time.monotonic()

    def check(record: PhysicalFile) -> tuple[PhysicalFile, str, Any]:
        tier = StorageTier(record.storage_tier)
        info = store.head(tier, record.path)
        if info is not None:
            if record.size is not None and info.size != record.size:
                return record, "size", info.size
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

    workers = concurrency or get_settings().options["ARCHIVE_CONCURRENCY"]
    now = timezone.now()
    rows = PhysicalFile.objects.exclude(lease_until__gt=now).order_by("id")
    with ThreadPoolExecutor(workers, thread_name_prefix="s3strata-verify") as pool:
        batch: list[PhysicalFile] = []
        for record in rows.iterator(chunk_size=1000):
            batch.append(record)
            if len(batch) >= 1000:
                _verify_batch(pool, check, batch, summary, repair, progress)
                batch = []
        if batch:
            _verify_batch(pool, check, batch, summary, repair, progress)
        _close_thread_connections(pool, workers)
    summary.duration = round(time.monotonic() - started, 3)
    logger.info(
        "s3strata: verified %d row(s): %d missing, %d in the other tier, %d size mismatches, %d repaired",
        summary.checked,
        len(summary.missing),
        len(summary.wrong_tier),
        len(summary.size_mismatch),
        summary.repaired,
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
        elif outcome == "tier":
            other, other_key = detail
            summary.wrong_tier.append({**entry, "found_in": other.value, "found_at": other_key})
            if repair:
                # Under both keys' claims, and only if the row did not change meanwhile (a move in flight would).
                fixed = get_file_manager().sync.relocate(record, other, other_key)  # type: ignore[arg-type]
                summary.repaired += fixed is not None
        else:
            summary.missing.append(entry)
        progress(1)


@dataclass
class BulkResult(_Summary):
    """What a bulk action on selected files did."""

    action: str
    succeeded: list[int] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)


#: The bulk actions, by name: what the admin, the tasks and code call.
BULK_ACTIONS: dict[str, Callable[[PhysicalFile, dict[str, Any]], Any]] = {
    "to_hot": lambda f, kw: f.set_tier(StorageTier.HOT, hot_duration=kw.get("hot_duration")),
    "to_cold": lambda f, kw: f.set_tier(StorageTier.COLD),
    "archive": lambda f, kw: f.archive(),
    "make_public": lambda f, kw: f.set_visibility("PUBLIC"),
    "make_private": lambda f, kw: f.set_visibility("PRIVATE"),
    "set_hot_duration": lambda f, kw: f.set_hot_duration(kw.get("duration")),
    "delete": lambda f, kw: f.delete(),
}


def apply_to_files(ids: list[int], action: str, concurrency: int | None = None, **kwargs: Any) -> BulkResult:
    """Apply a bulk action to the files with ``ids`` (in parallel); one failure does not stop the rest."""
    if action not in BULK_ACTIONS:
        raise ValueError(f"Unknown action {action!r}: use one of {', '.join(BULK_ACTIONS)}.")
    run = BULK_ACTIONS[action]
    result = BulkResult(action)
    records = list(PhysicalFile.objects.filter(pk__in=ids).order_by("id"))
    missing = set(ids) - {r.pk for r in records}
    result.failed.extend({"id": i, "filename": "", "error": "no such file"} for i in sorted(missing))
    if not records:
        return result
    workers = min(len(records), concurrency or get_settings().options["ARCHIVE_CONCURRENCY"])

    def one(record: PhysicalFile) -> tuple[PhysicalFile, str | None]:
        try:
            run(record, kwargs)
            return record, None
        except Exception as exc:
            logger.warning("s3strata: %s failed for file %s: %s", action, record.pk, exc)
            return record, str(exc)

    with ThreadPoolExecutor(workers, thread_name_prefix="s3strata-bulk") as pool:
        for record, error in pool.map(one, records):
            if error is None:
                result.succeeded.append(record.pk)
            else:
                result.failed.append({"id": record.pk, "filename": record.filename, "error": error})
        _close_thread_connections(pool, workers)
    return result
