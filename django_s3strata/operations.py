"""The engines behind tasks, commands and the admin: archival with leases, the orphan sweep, bulk actions.

Archival claims expired HOT rows in short transactions (``SELECT ... FOR UPDATE SKIP LOCKED``
on PostgreSQL, a compare-and-set UPDATE elsewhere), marking each with a lease; no row lock is
held during S3 I/O. A claimed file is moved by exactly one worker; a crash leaves the lease to
expire, and the next run converges. Verify lives in ``operations_verify`` and is re-exported here,
so ``operations.verify_files`` is what tasks and commands call.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connections, router, transaction
from django.db.models import Q
from django.utils import timezone

from .conf import get_settings
from .core import direct
from .core.config import parse_tier
from .core.exceptions import ConflictError, S3StrataError
from .core.manager import ArchiveClaim, SyncFileManager
from .core.orphans import ORPHAN_ACTIONS, OrphanOutcome, OrphanPolicy
from .core.types import OrphanObject, StorageTier
from .models import PhysicalFile
from .operations_runs import Progress, RunSummary, close_thread_connections, no_progress
from .operations_verify import VerifySummary, verify_files
from .querysets import config_q
from .services import get_file_manager

if TYPE_CHECKING:
    from .core.objectstore import ObjectStore

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


@dataclass
class ArchiveSummary(RunSummary):
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


def claim_expired(
    owner: str, batch_size: int, lease_seconds: int, exclude: set[int] | None = None, config: str | None = None
) -> list[PhysicalFile]:
    """Claim up to ``batch_size`` expired HOT rows of configuration ``config`` for ``owner`` in one short transaction."""
    now = timezone.now()
    lease = {"lease_owner": owner, "lease_until": now + timedelta(seconds=lease_seconds)}
    using = router.db_for_write(PhysicalFile)
    with transaction.atomic(using=using):
        candidates = PhysicalFile.objects.filter(_claimable(now), config_q(config)).exclude(id__in=exclude or ())
        candidates = candidates.order_by("hot_until", "id")
        if connections[using].features.has_select_for_update_skip_locked:
            ids = list(candidates.select_for_update(skip_locked=True).values_list("id", flat=True)[:batch_size])
            PhysicalFile.objects.filter(pk__in=ids).update(**lease)
        else:
            # Compare-and-set: the UPDATE re-checks that each row is still free, so one owner wins it.
            ids = list(candidates.values_list("id", flat=True)[:batch_size])
            PhysicalFile.objects.filter(_claimable(now), pk__in=ids).update(**lease)
    return list(PhysicalFile.objects.filter(pk__in=ids, lease_owner=owner))


def _release(record: PhysicalFile, owner: str, **extra: Any) -> None:
    PhysicalFile.objects.filter(pk=record.pk, lease_owner=owner).update(lease_owner=None, lease_until=None, **extra)


def archive_expired(
    *,
    batch_size: int | None = None,
    concurrency: int | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    lease_seconds: int | None = None,
    progress: Progress = no_progress,
    config: str | None = None,
) -> ArchiveSummary:
    """Move configuration ``config``'s expired HOT files to COLD in claimed batches with bounded concurrency.

    ``config`` None is "default"; tasks and commands call this once per configuration.
    """
    opts = get_settings(config).options
    batch_size = batch_size or opts["ARCHIVE_BATCH_SIZE"]
    concurrency = concurrency or opts["ARCHIVE_CONCURRENCY"]
    summary = ArchiveSummary(dry_run=dry_run)
    started = time.monotonic()
    if dry_run:
        ids = PhysicalFile.objects.expired().for_config(config).order_by("hot_until", "id").values_list("id", flat=True)
        summary.would_move = list(ids[:limit] if limit else ids)
        summary.duration = time.monotonic() - started
        return summary
    run = _ArchiveRun(get_file_manager(config).sync, summary, lease_seconds or opts["ARCHIVE_LEASE_SECONDS"], progress)
    run.config = config
    with ThreadPoolExecutor(concurrency, thread_name_prefix="s3strata-archive") as pool:
        pending: _ArchiveBatch | None = None
        while True:
            done = summary.moved + summary.failed + summary.skipped + (len(pending[0]) if pending else 0)
            room = batch_size if limit is None else min(batch_size, limit - done)
            batch = run.claim(room) if room > 0 else []
            # Copy this batch while the previous one commits: the pool never waits for the database.
            # The batch's object keys are claimed in one call; files another writer holds are skipped.
            claim = run.sync.claim_archive(batch)
            copying = [
                pool.submit(run.sync.copy_for_archive, f, claim) if isinstance(f, PhysicalFile) else _done(f) for f in claim.files
            ]
            if pending is not None:
                run.settle(*pending)
            if not batch:
                break
            pending = (batch, claim, copying)
        close_thread_connections(pool, concurrency)
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


#: One archival batch in flight: its claimed rows, the claim on their keys, and their copies.
_ArchiveBatch = tuple[list[PhysicalFile], ArchiveClaim, list[Future[Any]]]


class _ArchiveRun:
    """One archival run's lease owner, its tally, and the rows it passes over until the next run."""

    def __init__(self, sync: SyncFileManager, summary: ArchiveSummary, lease_seconds: int, progress: Progress) -> None:
        self.sync, self.summary, self.lease_seconds, self.progress = sync, summary, lease_seconds, progress
        self.owner = _lease_owner()
        self.passed: set[Any] = set()
        self.config: str | None = None

    def claim(self, room: int) -> list[PhysicalFile]:
        """Claim up to ``room`` expired rows, leaving out those this run already passed over or saw fail."""
        # Files that failed, or that another writer holds, wait for the next run: claiming them again in
        # this one would only skip them again (a killed writer's claims last CLAIM_SECONDS).
        exclude = self.passed | {f["id"] for f in self.summary.failures}
        return claim_expired(self.owner, room, self.lease_seconds, exclude=exclude, config=self.config)

    def settle(self, batch: list[PhysicalFile], claim: ArchiveClaim, copying: list[Future[Any]]) -> None:
        """Commit a batch once (which clears the leases), delete its sources in bulk, release the rest."""
        summary = self.summary
        outcomes = self.sync.finish_archive([f.result() for f in copying], claim)
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
                self.passed.add(record.pk)
                _release(record, self.owner)
            else:
                summary.failed += 1
                summary.failures.append({"id": record.pk, "path": record.path, "error": str(outcome)})
                logger.error("s3strata: archiving file %s (%s) failed: %s", record.pk, record.path, outcome)
                _release(record, self.owner)
            self.progress(1)
        _record_sizes(unsized)


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
        PhysicalFile.objects.filter(pk__in=pks).update(size=size)


@dataclass
class OrphanSummary(RunSummary):
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
    config: str | None = None,
) -> PhysicalFile:
    """Create the row for an existing object (filename: the key's last segment unless given) and return it.

    The row is written in one INSERT with what S3 answers for the object now (size, content type,
    ETag), under the key's claim; ``size``, ``content_type`` and ``etag`` are accepted for callers
    that read a listing, and ignored. Raise ConflictError when the object is not an orphan (a row
    points at it, another writer holds it, it is gone, or it is a stale copy of a file that has a
    row under another tier or visibility). ``wait``: seconds to wait for another writer's claim on
    the key (None: ``CLAIM_WAIT``); ``config``: the configuration whose buckets hold it (None: "default").
    """
    record: PhysicalFile | None = get_file_manager(config).sync.adopt_object(tier, key, filename, hot_until, wait)  # type: ignore[assignment]
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
    config: str | None = None,
) -> OrphanSummary:
    """Stream ``config``'s two buckets (None: "default") and report, delete or adopt orphans older than the grace period.

    The core's orphan engine does the work (each action under the key's claim, re-checked there);
    this tallies its outcomes and then counts, and aborts, unfinished multipart uploads.
    ``on_orphan(orphan, action)`` is called for each one (action: "found", "deleted", "adopted",
    "skipped", "failed"), so callers can stream a report without holding the listing.
    """
    if mode not in ORPHAN_ACTIONS:
        raise ValueError(f"mode must be 'report', 'delete' or 'adopt', not {mode!r}")
    manager = get_file_manager(config)
    grace = older_than if older_than is not None else manager.config.advanced.orphan_grace_period
    tiers = [parse_tier(tier)] if tier else list(StorageTier)
    summary = OrphanSummary(mode=mode, dry_run=dry_run)
    started = time.monotonic()

    def tally(outcome: OrphanOutcome) -> None:
        orphan = outcome.orphan
        summary.found += 1
        summary.bytes += orphan.size or 0
        if outcome.action in _TALLIED:
            setattr(summary, outcome.action, getattr(summary, outcome.action) + 1)
        if outcome.action == "failed":
            summary.errors.append({"tier": orphan.tier.value, "key": orphan.key, "error": outcome.error or ""})
        if on_orphan is not None:
            on_orphan(orphan, outcome.action)

    policy = OrphanPolicy(mode, grace, dry_run, prefix, tiers[0] if tier else None)
    manager.sync.sweep_orphans(policy, tally)
    _sweep_unfinished_uploads(
        manager.objectstore,
        tiers,
        prefix,
        grace,
        abort=mode == "delete" and not dry_run,
        abort_abandoned=not dry_run,
        summary=summary,
        config=config,
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


#: The engine's outcomes that have a counter of the same name in OrphanSummary ("found" counts every orphan).
_TALLIED = ("deleted", "adopted", "skipped", "failed")


def _sweep_unfinished_uploads(
    store: ObjectStore,
    tiers: list[StorageTier],
    prefix: str | None,
    grace: int,
    *,
    abort: bool,
    abort_abandoned: bool,
    summary: OrphanSummary,
    config: str | None = None,
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
    layout = get_settings(config).layout
    for t in tiers:
        for scan in layout.scan_prefixes(t, prefix):
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
class BulkResult(RunSummary):
    """What a bulk action on selected files did."""

    action: str
    #: Files the action changed.
    succeeded: list[int] = field(default_factory=list)
    #: Files a move left as they were: already in the tier or visibility asked for.
    unchanged: list[int] = field(default_factory=list)
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
#: The actions that move a file; one whose tier and path they leave alone was already where they move it.
MOVES = ("to_hot", "to_cold", "archive", "make_public", "make_private")


def apply_to_files(ids: list[int], action: str, concurrency: int | None = None, **kwargs: Any) -> BulkResult:
    """Apply a bulk action to the files with ``ids`` (in parallel); one failure does not stop the rest.

    A move that leaves a file where it was (already in that tier or visibility) counts it as
    ``unchanged``, not ``succeeded``.
    """
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

    def one(record: PhysicalFile) -> tuple[PhysicalFile, bool, str | None]:
        before = (record.storage_tier, record.path)
        try:
            run(record, kwargs)  # the model's methods refresh ``record`` with what was committed
            return record, action not in MOVES or (record.storage_tier, record.path) != before, None
        except Exception as exc:
            logger.warning("s3strata: %s failed for file %s: %s", action, record.pk, exc)
            return record, False, str(exc)

    with ThreadPoolExecutor(workers, thread_name_prefix="s3strata-bulk") as pool:
        for record, changed, error in pool.map(one, records):
            if error is not None:
                result.failed.append({"id": record.pk, "filename": record.filename, "error": error})
            elif changed:
                result.succeeded.append(record.pk)
            else:
                result.unchanged.append(record.pk)
        close_thread_connections(pool, workers)
    return result
