"""Models of the test project: a PhysicalFileField, a FileField on the backend, and the default storage."""

from __future__ import annotations

from django.db import models

from django_s3strata.fields import PhysicalFileField
from django_s3strata.storage import S3StrataStorage


def contract_path(instance: Contract, filename: str) -> str:
    return f"contracts/{instance.customer}/{filename}"


class Document(models.Model):
    title = models.CharField(max_length=100)
    attachment = PhysicalFileField(upload_to="docs/%Y", hot_duration=3600)

    def __str__(self) -> str:
        return self.title


class Contract(models.Model):
    customer = models.CharField(max_length=50)
    scan = PhysicalFileField(upload_to=contract_path, tier="COLD", delete_with_owner=True, blank=False, null=True)


class Report(models.Model):
    name = models.CharField(max_length=100)
    pdf = models.FileField(upload_to="reports", storage=S3StrataStorage(tier="HOT", visibility="PUBLIC"), max_length=255)
    # The default storage is S3StrataStorage too (settings.STORAGES).
    appendix = models.FileField(upload_to="appendices", blank=True)


class Clip(models.Model):
    """Uploaded from the browser straight to S3 (the form carries only a signed reference)."""

    title = models.CharField(max_length=100)
    video = PhysicalFileField(direct_upload=True, upload_to="clips/%Y", hot_duration=600)

    def __str__(self) -> str:
        return self.title


class Profile(models.Model):
    """A replaceable photo (the old file goes) linked through the download view; a CV on a storage of signed links."""

    name = models.CharField(max_length=100)
    photo = PhysicalFileField(upload_to="photos", delete_on_replace=True, url_mode="view")
    cv = models.FileField(upload_to="cvs", storage=S3StrataStorage(url_mode="signed"), blank=True, max_length=255)

    def __str__(self) -> str:
        return self.name


class Export(models.Model):
    """Files of the "exports" configuration (its own bucket pair): a PhysicalFileField and a FileField on its storage.

    Only tests that set ``S3STRATA`` with an "exports" configuration use it (tests/test_configurations.py).
    """

    name = models.CharField(max_length=100)
    archive = PhysicalFileField(upload_to="exports", config="exports")
    sheet = models.FileField(upload_to="sheets", storage=S3StrataStorage(config="exports"), blank=True, max_length=255)

    def __str__(self) -> str:
        return self.name
