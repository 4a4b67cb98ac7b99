"""PhysicalFile routed to a database of its own (DATABASE_ROUTERS): every operation writes there, none to "default".

Each test runs once per second database that answers here ("files_postgresql", "files_mariadb",
"files_sqlite" in tests/settings.py), whatever the suite's own database is: PostgreSQL with the
files on SQLite, SQLite with the files on PostgreSQL, and so on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from django_s3strata import get_file_manager, operations, signals
from django_s3strata.core import UploadOptions
from django_s3strata.models import PhysicalFile
from tests import settings as test_settings
from tests.conftest import Env
from tests.routers import PhysicalFileRouter


def _alias(vendor: str) -> Any:
    alias = f"files_{vendor}"
    if alias not in test_settings.DATABASES:
        return pytest.param(alias, marks=pytest.mark.skip(reason=f"no {vendor} server answers here"), id=vendor)
    # Only reachable aliases are asked for: pytest-django makes a test database for each one asked.
    return pytest.param(alias, marks=pytest.mark.django_db(databases=["default", alias], transaction=True), id=vendor)


pytestmark = [
    pytest.mark.parametrize("alias", [_alias(v) for v in test_settings.VENDORS]),
    pytest.mark.parametrize("env", ["shared"], indirect=True),
]


@pytest.fixture
def routed(alias: str, s3strata_settings: Env, settings: Any) -> Iterator[str]:
    """Route PhysicalFile to ``alias`` for the test; after it, "default" must hold no row."""
    settings.DATABASE_ROUTERS = [PhysicalFileRouter(alias)]
    yield alias
    assert not PhysicalFile.objects.using("default").exists(), "a PhysicalFile row was written to the default database"


def rows(alias: str) -> dict[str, str]:
    """Return {path: tier} of the routed database's rows."""
    return dict(PhysicalFile.objects.using(alias).values_list("path", "storage_tier"))


def test_uploads_through_the_storage_and_the_core_land_in_the_routed_database(routed: str, s3strata_settings: Env) -> None:
    env = s3strata_settings
    name = default_storage.save("docs/routed.txt", ContentFile(b"via the storage"))
    record = get_file_manager().sync.upload(b"via the core", UploadOptions(filename="core.txt"))
    assert record._state.db == routed
    stored = PhysicalFile.objects.using(routed).get(path=f"private/{name}")
    assert rows(routed) == {stored.path: "HOT", record.path: "HOT"}
    assert default_storage.exists(name) and default_storage.size(name) == len(b"via the storage")
    with default_storage.open(name) as f:
        assert f.read() == b"via the storage"
    assert env.read("HOT", record.path) == b"via the core"
    default_storage.delete(name)
    assert rows(routed) == {record.path: "HOT"} and env.keys("HOT") == [record.path]


def test_set_tier_set_visibility_and_delete_change_the_routed_rows(routed: str, s3strata_settings: Env) -> None:
    env = s3strata_settings
    sent: list[tuple[str, Any]] = []

    def on_change(sender: Any, file: PhysicalFile, **kw: Any) -> None:
        sent.append((kw.get("new_tier") or kw.get("new_visibility") or "deleted", file.pk))

    receivers = (signals.file_tier_changed, signals.file_visibility_changed, signals.file_deleted)
    for signal in receivers:
        signal.connect(on_change)
    try:
        f = get_file_manager().sync.upload(b"moving", UploadOptions(filename="m.txt"))
        f.set_tier("COLD")
        assert rows(routed) == {f.path: "COLD"} and env.read("COLD", f.path) == b"moving"
        f.set_visibility("PUBLIC")
        assert rows(routed) == {f.path: "COLD"} and f.path.startswith("public/")
        assert env.keys("COLD") == [f.path] and env.keys("HOT") == []
        f.delete()
        assert rows(routed) == {} and env.keys("COLD") == []
    finally:
        for signal in receivers:
            signal.disconnect(on_change)
    assert sent == [("COLD", f.pk), ("PUBLIC", f.pk), ("deleted", f.pk)]


def test_signals_wait_for_the_routed_transaction(routed: str, s3strata_settings: Env) -> None:
    uploaded: list[int] = []

    def on_upload(sender: Any, file: PhysicalFile, **kw: Any) -> None:
        uploaded.append(file.pk)

    signals.file_uploaded.connect(on_upload)
    try:
        with transaction.atomic(using=routed):
            f = get_file_manager().sync.upload(b"in a transaction", UploadOptions(filename="t.txt"))
            assert uploaded == []  # sent when the routed database commits, not before
        assert uploaded == [f.pk]
        with transaction.atomic(using=routed):
            f.set_tier("COLD")
        assert rows(routed) == {f.path: "COLD"}
    finally:
        signals.file_uploaded.disconnect(on_upload)


def test_archival_claims_and_moves_the_routed_rows(routed: str, s3strata_settings: Env) -> None:
    env = s3strata_settings
    sync = get_file_manager().sync
    files = [sync.upload(f"old {i}".encode(), UploadOptions(filename=f"o{i}.txt", hot_duration=3600)) for i in range(5)]
    fresh = sync.upload(b"fresh", UploadOptions(filename="fresh.txt", hot_duration=3600))
    for f in files:
        f.set_hot_duration(0)  # expired now: the next run archives it
    assert sorted(operations.archive_expired(dry_run=True).would_move) == sorted(f.pk for f in files)
    summary = operations.archive_expired(batch_size=2, concurrency=2)
    assert (summary.moved, summary.skipped, summary.failed) == (5, 0, 0)
    assert rows(routed) == {**{f.path: "COLD" for f in files}, fresh.path: "HOT"}
    assert not PhysicalFile.objects.using(routed).filter(lease_owner__isnull=False).exists()
    assert env.keys("COLD") == sorted(f.path for f in files) and env.keys("HOT") == [fresh.path]
    assert operations.archive_expired().moved == 0


def test_orphan_sweep_reports_adopts_and_deletes_against_the_routed_rows(routed: str, s3strata_settings: Env) -> None:
    env = s3strata_settings
    kept = get_file_manager().sync.upload(b"kept")
    env.put("HOT", "private/lost.bin", b"12345")
    env.put("COLD", "public/old.txt", b"abc")
    report = operations.sweep_orphans("report", older_than=0)
    assert (report.found, report.bytes) == (2, 8)  # the routed row of ``kept`` is no orphan's
    adopted = operations.sweep_orphans("adopt", older_than=0, tier="COLD")
    assert adopted.adopted == 1 and rows(routed) == {kept.path: "HOT", "public/old.txt": "COLD"}
    assert PhysicalFile.objects.using(routed).get(path="public/old.txt").size == 3
    deleted = operations.sweep_orphans("delete", older_than=0)
    assert (deleted.found, deleted.deleted) == (1, 1) and env.keys("HOT") == [kept.path]
    assert operations.sweep_orphans("report", older_than=0).found == 0


def test_verify_reads_and_repairs_the_routed_rows(routed: str, s3strata_settings: Env) -> None:
    env = s3strata_settings
    sync = get_file_manager().sync
    ok = sync.upload(b"ok")
    gone = sync.upload(b"gone")
    moved = sync.upload(b"moved")
    env.hot_client.delete_object(Bucket=env.hot_bucket, Key=gone.path)
    env.put("COLD", moved.path, b"moved")
    env.hot_client.delete_object(Bucket=env.hot_bucket, Key=moved.path)
    report = operations.verify_files(repair=True)
    assert report.checked == 3 and report.ok == 1 and report.repaired == 1
    assert [m["id"] for m in report.missing] == [gone.pk]
    assert rows(routed) == {ok.path: "HOT", gone.path: "HOT", moved.path: "COLD"}
