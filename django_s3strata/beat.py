"""A ready Celery beat schedule, with intervals from ``S3STRATA``; merge it into ``CELERY_BEAT_SCHEDULE``."""

from __future__ import annotations

from typing import Any

__all__ = ["beat_schedule", "install_django_celery_beat"]


def _entries(options: dict[str, Any]) -> dict[str, tuple[str, int, dict[str, Any]]]:
    entries: dict[str, tuple[str, int, dict[str, Any]]] = {}
    if options["ARCHIVE_INTERVAL"]:
        entries["s3strata-archive"] = ("django_s3strata.tasks.archive_expired_hot_files", options["ARCHIVE_INTERVAL"], {})
    if options["ORPHAN_SWEEP_INTERVAL"]:
        entries["s3strata-orphans"] = (
            "django_s3strata.tasks.sweep_orphans",
            options["ORPHAN_SWEEP_INTERVAL"],
            {"mode": options["ORPHAN_SWEEP_MODE"]},
        )
    if options["VERIFY_INTERVAL"]:
        entries["s3strata-verify"] = ("django_s3strata.tasks.verify_files", options["VERIFY_INTERVAL"], {})
    if options["UNREFERENCED_SWEEP_INTERVAL"]:
        entries["s3strata-unreferenced"] = (
            "django_s3strata.tasks.sweep_unreferenced",
            options["UNREFERENCED_SWEEP_INTERVAL"],
            {"mode": options["UNREFERENCED_SWEEP_MODE"]},
        )
    if options["RESTORE_POLL_INTERVAL"]:
        entries["s3strata-restores"] = ("django_s3strata.tasks.complete_restores", options["RESTORE_POLL_INTERVAL"], {})
    return entries


def beat_schedule(raw_settings: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Return the schedule entries; each message expires after one interval so a backlog never stacks.

    In settings.py, where the app registry is not ready, pass the ``S3STRATA`` dict::

        CELERY_BEAT_SCHEDULE = {**beat_schedule(S3STRATA), ...}
    """
    from .conf import DJANGO_OPTIONS

    options = {**DJANGO_OPTIONS, **{k: v for k, v in (raw_settings or {}).items() if k in DJANGO_OPTIONS}}
    if raw_settings is None:
        from .conf import get_settings

        options = get_settings().options
    return {
        name: {"task": task, "schedule": float(interval), "kwargs": kwargs, "options": {"expires": float(interval)}}
        for name, (task, interval, kwargs) in _entries(options).items()
    }


def install_django_celery_beat() -> list[str]:
    """Create or update the same entries as django-celery-beat PeriodicTask rows; return their names."""
    import json

    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    names = []
    for name, entry in beat_schedule(None).items():
        every = int(entry["schedule"])
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.update_or_create(
            name=name,
            defaults={
                "task": entry["task"],
                "interval": interval,
                "kwargs": json.dumps(entry["kwargs"]),
                "expire_seconds": every,
            },
        )
        names.append(name)
    return names
