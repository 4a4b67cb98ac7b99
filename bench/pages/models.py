"""The bench's plain-FileField model (its table made by ``migrate --run-syncdb``)."""

from __future__ import annotations

from django.db import models

from django_s3strata.storage import S3StrataStorage


class Attachment(models.Model):
    """A row with a plain ``FileField(storage=S3StrataStorage())``: no PhysicalFileField, no prefetch in the view."""

    file = models.FileField(storage=S3StrataStorage(), max_length=255)

    class Meta:
        app_label = "pages"
