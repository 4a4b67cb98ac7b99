"""Celery tasks: archival, orphan sweep and verify, thin wrappers over ``operations``.

Each is a shared task with ``acks_late`` (a worker that dies mid-run leaves the message to be
redelivered; the archival lease, not the broker, keeps a second worker off a claimed file),
retries with exponential backoff and jitter on transient S3 errors, no retry on configuration
errors, and a JSON result. The periodic ones take ``config``, the ``S3STRATA`` configuration to
run for (None: "default"); ``beat.beat_schedule`` has one entry per configuration.
"""

from __future__ import annotations

import random
from typing import Any

try:
    from celery import shared_task
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("django_s3strata.tasks needs Celery: pip install 'django-s3strata[celery]'.") from exc

from django.db import transaction

from . import operations
from .core.exceptions import StorageError

__all__ = [
    "apply_file_action",
    "archive_expired_hot_files",
    "complete_restores",
    "enqueue_on_commit",
    "restore_files",
    "sweep_orphans",
    "sweep_unreferenced",
    "verify_files",
]

MAX_RETRIES = 5


def _retry(task: Any, exc: StorageError) -> Any:
    if not exc.transient:
        raise exc
    countdown = min(600, 2**task.request.retries * 5) * random.uniform(0.5, 1.5)
    raise task.retry(exc=exc, countdown=countdown, max_retries=MAX_RETRIES)


@shared_task(bind=True, acks_late=True, name="django_s3strata.tasks.archive_expired_hot_files")
def archive_expired_hot_files(
    self: Any,
    limit: int | None = None,
    batch_size: int | None = None,
    concurrency: int | None = None,
    config: str | None = None,
) -> dict[str, Any]:
    """Move configuration ``config``'s expired HOT files to COLD; return the run's summary."""
    try:
        summary = operations.archive_expired(limit=limit, batch_size=batch_size, concurrency=concurrency, config=config)
        return summary.as_dict()
    except StorageError as exc:
        return _retry(self, exc)


@shared_task(bind=True, acks_late=True, name="django_s3strata.tasks.sweep_orphans")
def sweep_orphans(
    self: Any,
    mode: str | None = None,
    prefix: str | None = None,
    tier: str | None = None,
    older_than: int | None = None,
    config: str | None = None,
) -> dict[str, Any]:
    """Report, delete or adopt configuration ``config``'s orphans older than the grace period; return the summary."""
    from .conf import get_settings

    try:
        chosen = mode or get_settings(config).options["ORPHAN_SWEEP_MODE"]
        return operations.sweep_orphans(chosen, prefix=prefix, tier=tier, older_than=older_than, config=config).as_dict()
    except StorageError as exc:
        return _retry(self, exc)


@shared_task(bind=True, acks_late=True, name="django_s3strata.tasks.verify_files")
def verify_files(self: Any, repair: bool = False, config: str | None = None) -> dict[str, Any]:
    """Check every row's object in ``config``; with ``repair``, correct rows whose object is in the other tier."""
    try:
        return operations.verify_files(repair=repair, config=config).as_dict()
    except StorageError as exc:
        return _retry(self, exc)


@shared_task(bind=True, acks_late=True, name="django_s3strata.tasks.sweep_unreferenced")
def sweep_unreferenced(self: Any, mode: str | None = None, grace: int | None = None, config: str | None = None) -> dict[str, Any]:
    """Report or delete ``config``'s files no field references, older than the grace period; return the summary."""
    from .conf import get_settings
    from .operations_unreferenced import sweep_unreferenced as sweep

    try:
        summary = sweep(mode or get_settings(config).options["UNREFERENCED_SWEEP_MODE"], grace=grace, config=config)
    except StorageError as exc:
        return _retry(self, exc)
    result = summary.as_dict()
    result["files"] = result["files"][:100]  # a result backend keeps it: the counts say the rest
    return result


@shared_task(bind=True, acks_late=True, name="django_s3strata.tasks.restore_files")
def restore_files(self: Any, ids: list[int], days: int | None = None, retrieval: str | None = None) -> dict[str, Any]:
    """Request restores of archived files (idempotent: a restore under way is left alone); return the summary."""
    from .operations_restore import request_restores

    try:
        return request_restores(ids, days=days, retrieval=retrieval).as_dict()
    except StorageError as exc:
        return _retry(self, exc)


@shared_task(bind=True, acks_late=True, name="django_s3strata.tasks.complete_restores")
def complete_restores(self: Any, limit: int | None = None, config: str | None = None) -> dict[str, Any]:
    """Check ``config``'s pending restores (at most ``limit``, else RESTORE_POLL_BATCH), run the moves that waited."""
    from .operations_restore import complete_restores as complete

    try:
        return complete(limit, config=config).as_dict()
    except StorageError as exc:
        return _retry(self, exc)


def enqueue_on_commit(task: Any, *args: Any, **kwargs: Any) -> None:
    """Send ``task`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: task.apply_async(args=args, kwargs=kwargs))


@shared_task(bind=True, acks_late=True, name="django_s3strata.tasks.apply_file_action")
def apply_file_action(self: Any, ids: list[int], action: str, **kwargs: Any) -> dict[str, Any]:
    """Apply a bulk action (``operations.BULK_ACTIONS``) to many files, as the admin queues it."""
    return operations.apply_to_files(ids, action, **kwargs).as_dict()
