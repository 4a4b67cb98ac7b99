"""The public names: upstream's, importable from the core and the package, and __all__ kept honest."""

from __future__ import annotations

import subprocess
import sys

import django_s3strata
import django_s3strata.core as core

UPSTREAM = {
    "FileManager", "S3StrataConfig", "S3TierConfig", "S3StrataAdvancedOptions", "StorageAdapter", "PhysicalFile",
    "StorageTier", "FileVisibility", "UploadOptions", "GetUrlOptions", "SetVisibilityOptions", "SetTierOptions",
    "SetHotDurationOptions", "S3Object", "OrphanObject", "BucketObjects", "AllBucketObjects", "DeleteOrphanOptions",
    "DeleteOrphanResult", "AdoptOrphanOptions", "AdoptOrphanResult", "InMemoryAdapter",
}  # fmt: skip


def test_upstream_names_are_exported_from_core_and_package() -> None:
    assert set(core.__all__) >= UPSTREAM
    assert set(django_s3strata.__all__) >= UPSTREAM
    for name in core.__all__:
        assert getattr(core, name) is getattr(django_s3strata, name)


def test_all_lists_exactly_the_public_names() -> None:
    public = {n for n in dir(core) if not n.startswith("_") and not isinstance(getattr(core, n), type(core))}
    assert public - {"annotations"} == set(core.__all__)


def test_importing_the_core_imports_no_django() -> None:
    code = "import sys, django_s3strata.core; print(sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_str_enums_compare_with_plain_strings() -> None:
    assert core.StorageTier.HOT == "HOT" and f"{core.StorageTier.COLD}" == "COLD"
    assert core.FileVisibility("PUBLIC") is core.FileVisibility.PUBLIC
