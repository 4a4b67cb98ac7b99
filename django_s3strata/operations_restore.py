"""The deep archive's engine: restore requests for chosen files, and the poll that completes restores and pending moves.

The admin action, the ``s3strata_restore`` command and the Celery tasks all run these two
functions. Neither holds the whole table: requests go to the files asked for, and the poll reads
at most ``RESTORE_POLL_BATCH`` pending rows per run, one HEAD each (docs/archive.md).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from .conf import get_settings
from .core.restore import RESTORE_COSTS, RESTORE_TIMES, ArchiveState, RestoreResult, check_restore_options, needs_restore
from .core.types import RestoreOptions
from .models import PhysicalFile
from .operations_runs import RunSummary, close_thread_connections
from .services import get_file_manager

__all__ = [
    "CompleteSummary",
    "RestoreSummary",
    "archive_class",
    "complete_restores",
    "pending_restores",
    "request_restores",
    "restore_terms",
]

logger = logging.getLogger(__name__)


def restore_terms(storage_class: str | None, retrieval: str) -> dict[str, str]:
    """Return what a restore of ``storage_class`` at ``retrieval`` takes: {"delay": ..., "cost": ...} in words."""
    cls = (storage_class or "").upper()
    return {
        "delay": RESTORE_TIMES.get(cls, {}).get(retrieval, "not offered for this class"),
        "cost": RESTORE_COSTS.get(cls, {}).get(retrieval, "not offered for this class"),
    }


def _options(days: int | None, retrieval: str | None, config: str | None = None) -> RestoreOptions:
    opts = get_settings(config).options
    options = RestoreOptions(days if days is not None else opts["RESTORE_DAYS"], retrieval or opts["RESTORE_RETRIEVAL"])
    days_, retrieval_ = check_restore_options(options)  # InvalidOptionError before any request
    return RestoreOptions(days_, retrieval_)


@dataclass
class RestoreSummary(RunSummary):
    """What a restore request for chosen files did (or, with ``dry_run``, would do)."""

    days: int
    retrieval: str
    dry_run: bool = False
    #: Files a RestoreObject was sent for (with ``dry_run``: would be).
    requested: list[int] = field(default_factory=list)
    #: Files whose restore was already under way: nothing changed.
    in_progress: list[int] = field(default_factory=list)
    #: Files that need no restore: readable, or restored already.
    not_archived: list[int] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    #: Per file: id, filename, storage class, state, and what was done.
    files: list[dict[str, Any]] = field(default_factory=list)


def request_restores(
    ids: list[int],
    *,
    days: int | None = None,
    retrieval: str | None = None,
    dry_run: bool = False,
    concurrency: int | None = None,
) -> RestoreSummary:
    """Request restores of the archived files among ``ids``; one failure does not stop the rest.

    Idempotent: a file whose restore is under way is counted ``in_progress`` and left alone. With
    ``dry_run``, each object is only looked at (one HEAD) and nothing is requested.
    """
    options = _options(days, retrieval)
    summary = RestoreSummary(options.days, str(options.retrieval), dry_run)
    records = list(PhysicalFile.objects.filter(pk__in=ids).order_by("id"))
    missing = set(ids) - {r.pk for r in records}
    summary.failed.extend({"id": i, "filename": "", "error": "no such file"} for i in sorted(missing))
    if not records:
        return summary

    def one(record: PhysicalFile) -> tuple[PhysicalFile, ArchiveState | None, str, str | None, bool]:
        sync = get_file_manager(record.config).sync  # each file's own bucket pair
        try:
            if dry_run:
                status = sync.restore_status(record)  # type: ignore[arg-type]
                would = status.state is ArchiveState.ARCHIVED
                return record, status.state, "would request a restore" if would else str(status), status.storage_class, would
            result: RestoreResult = sync.restore(record, options)  # type: ignore[arg-type]
            return record, result.status.state, result.message, result.status.storage_class, result.requested
        except Exception as exc:
            logger.warning("s3strata: restore of file %s failed: %s", record.pk, exc)
            return record, None, str(exc), None, False

    workers = min(len(records), concurrency or get_settings().options["ARCHIVE_CONCURRENCY"])
    with ThreadPoolExecutor(workers, thread_name_prefix="s3strata-restore") as pool:
        for record, state, message, storage_class, requested in pool.map(one, records):
            entry = {"id": record.pk, "filename": record.filename, "storage_class": storage_class}
            if state is None:
                summary.failed.append({**entry, "error": message})
                continue
            summary.files.append({**entry, "state": state.value, "message": message})
            if requested:
                summary.requested.append(record.pk)
            elif state is ArchiveState.RESTORING or state is ArchiveState.ARCHIVED:
                summary.in_progress.append(record.pk)
            else:
                summary.not_archived.append(record.pk)
        close_thread_connections(pool, workers)
    return summary


@dataclass
class CompleteSummary(RunSummary):
    """What one poll of pending restores found and did."""

    checked: int = 0
    #: Restores still under way.
    restoring: list[int] = field(default_factory=list)
    #: Restores found complete (``file_restored`` sent for each).
    restored: list[int] = field(default_factory=list)
    #: Pending moves run once their restore completed.
    moved: list[int] = field(default_factory=list)
    #: Pending moves whose object was archived again (the restore expired first): requested anew.
    requested_again: list[int] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)


def pending_restores(config: str | None = None) -> Any:
    """Return the rows the poll looks at in ``config``: restores under way and moves waiting for one, oldest request first."""
    waiting = Q(archive_state=ArchiveState.RESTORING.value) | Q(restore_move_to__isnull=False)
    return (
        PhysicalFile.objects.filter(waiting)
        .for_config(config)
        .exclude(lease_until__gt=timezone.now())
        .order_by(F("restore_requested_at").asc(nulls_first=True), "id")
    )


def complete_restores(limit: int | None = None, *, concurrency: int | None = None, config: str | None = None) -> CompleteSummary:
    """Check up to ``limit`` pending rows of ``config`` (one HEAD each), record their state, run moves whose restore completed.

    Recording a completed restore sends ``file_restored`` (events.py); a move that ran sends ``file_tier_changed``.
    """
    opts = get_settings(config).options
    rows = list(pending_restores(config)[: limit or opts["RESTORE_POLL_BATCH"]])
    summary = CompleteSummary(checked=len(rows))
    if not rows:
        return summary
    options = _options(None, None, config)
    sync = get_file_manager(config).sync

    def one(record: PhysicalFile) -> tuple[PhysicalFile, RestoreResult | Exception]:
        try:
            return record, sync.complete_restore(record, options)  # type: ignore[arg-type]
        except Exception as exc:
            logger.warning("s3strata: completing the restore of file %s failed: %s", record.pk, exc)
            return record, exc

    workers = min(len(rows), concurrency or opts["ARCHIVE_CONCURRENCY"])
    with ThreadPoolExecutor(workers, thread_name_prefix="s3strata-restores") as pool:
        for record, outcome in pool.map(one, rows):
            if isinstance(outcome, Exception):
                summary.failed.append({"id": record.pk, "filename": record.filename, "error": str(outcome)})
                continue
            if outcome.requested:
                summary.requested_again.append(record.pk)
            if not outcome.status.retrievable:
                summary.restoring.append(record.pk)
                continue
            if outcome.moved:
                summary.moved.append(record.pk)
            if record.archive_state == ArchiveState.RESTORING.value or outcome.moved:
                summary.restored.append(record.pk)  # file_restored: sent when the row recorded it (events.py)
        close_thread_connections(pool, workers)
    logger.info(
        "s3strata: checked %d pending restore(s): %d restored, %d moved, %d still restoring, %d failed",
        summary.checked,
        len(summary.restored),
        len(summary.moved),
        len(summary.restoring),
        len(summary.failed),
    )
    return summary


def archive_class(record: PhysicalFile) -> str | None:
    """Return the archive class the row's tier writes, or None when that class needs no restore."""
    try:
        storage_class = get_settings(record.config).layout.tiers[record.tier].storage_class
    except ValueError:  # a tier this app does not know
        return None
    return storage_class if needs_restore(storage_class) else None
