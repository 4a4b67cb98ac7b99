"""A database router for tests/test_routing.py: PhysicalFile rows on a database of their own."""

from __future__ import annotations

from typing import Any

from django_s3strata.apps import DjangoS3StrataConfig


class PhysicalFileRouter:
    """Send the app's models (``PhysicalFile``, app label ``s3strata``) to ``alias``; leave the rest to Django.

    Not in ``settings.DATABASE_ROUTERS`` by default: a test enables it with
    ``settings.DATABASE_ROUTERS = [PhysicalFileRouter("files_sqlite")]`` (Django resets its router
    cache when that setting changes).
    """

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def _route(self, model: Any) -> str | None:
        return self.alias if model._meta.app_label == DjangoS3StrataConfig.label else None

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return self._route(model)

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return self._route(model)

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        # Every test database gets every table, so a test can show that the default one stays empty.
        return None
