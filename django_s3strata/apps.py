"""The Django app configuration of django-s3strata."""

from __future__ import annotations

from django.apps import AppConfig


class DjangoS3StrataConfig(AppConfig):
    """Register django-s3strata: its checks, and the settings watcher of the FileManager."""

    name = "django_s3strata"
    label = "s3strata"
    verbose_name = "S3 tiered storage"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import checks, services  # noqa: F401  (registers checks and the setting_changed receiver)
