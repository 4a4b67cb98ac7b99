"""A ready Celery beat schedule, with intervals from ``S3STRATA``; merge it into ``CELERY_BEAT_SCHEDULE``.

Each configuration gets its own entries, with its own intervals: ``s3strata-archive`` for
"default", ``s3strata-archive-exports`` (task kwargs ``{"config": "exports"}``) for "exports".
"""

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


def _per_config(raw_settings: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Return {configuration name: its Django options} from ``raw_settings`` (None: the parsed setting)."""
    from .conf import DEFAULT, DJANGO_OPTIONS, split

    if raw_settings is None:
        from .conf import config_names, get_settings

        return {name: get_settings(name).options for name in config_names()}
    blocks = split(raw_settings)
    return {
        name: {**DJANGO_OPTIONS, **{k: v for k, v in (block or {}).items() if k in DJANGO_OPTIONS}}
        for name, block in sorted(blocks.items(), key=lambda item: (item[0] != DEFAULT, item[0]))
    }


def beat_schedule(raw_settings: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Return the schedule entries, each configuration's; each message expires after one interval so a backlog never stacks.

    In settings.py, where the app registry is not ready, pass the ``S3STRATA`` dict::

        CELERY_BEAT_SCHEDULE = {**beat_schedule(S3STRATA), ...}
    """
    from .conf import DEFAULT

    schedule: dict[str, dict[str, Any]] = {}
    for config, options in _per_config(raw_settings).items():
        for name, (task, interval, kwargs) in _entries(options).items():
            if config != DEFAULT:
                name, kwargs = f"{name}-{config}", {**kwargs, "config": config}
            expires = {"expires": float(interval)}
            schedule[name] = {"task": task, "schedule": float(interval), "kwargs": kwargs, "options": expires}
    return schedule


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
