"""The Django app configuration of django-s3strata: the top layer, which wires the ones below."""

from __future__ import annotations

from django.apps import AppConfig, apps
from django.core.signals import request_finished, request_started
from django.db import models
from django.db.models.signals import post_init

from . import services
from .core.manager import FileManager


class DjangoS3StrataConfig(AppConfig):
    """Register django-s3strata: its checks, the storage's cache subscription, and the FileManager's holder."""

    name = "django_s3strata"
    label = "s3strata"
    verbose_name = "S3 tiered storage"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        # checks registers the system checks when imported.
        from . import checks, events, storage  # noqa: F401

        # Side effects subscribed, not called upward: the adapter announces changed rows, the
        # storage's per-request name cache forgets them (services.py's setting_changed receiver
        # is connected when it is imported, above).
        events.rows_changed.connect(storage.forget_changed, dispatch_uid="s3strata-storage-cache-rows")
        request_started.connect(storage.clear_cache, dispatch_uid="s3strata-storage-cache-start")
        request_finished.connect(storage.clear_cache, dispatch_uid="s3strata-storage-cache-end")
        # Every FileField on this storage: its instances' names wait for the first url() (one query a page).
        # One receiver per (model, configuration): each storage finds its own configuration's names.
        for model in apps.get_models():
            by_config: dict[str, list[str]] = {}
            for f in model._meta.concrete_fields:
                if isinstance(f, models.FileField) and isinstance(f.storage, storage.S3StrataStorage):
                    by_config.setdefault(f.storage.config, []).append(f.attname)
            for config, names in by_config.items():
                uid = f"s3strata-loaded-{model._meta.label}" + ("" if config == "default" else f"-{config}")
                post_init.connect(storage.remember_loaded(tuple(names), config), sender=model, weak=False, dispatch_uid=uid)

    def file_manager(self, config: str | None = None) -> FileManager:
        """Return configuration ``config``'s FileManager (the model layer reaches it here, never by importing services)."""
        return services.get_file_manager(config)
