"""The engines: leased archival (also under contention), the orphan sweep and verify."""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections
from django.utils import timezone

from django_s3strata import get_file_manager, operations, signals
from django_s3strata.core import SetTierOptions, UploadOptions
from django_s3strata.models import PhysicalFile
from tests.conftest import Env


def upload_expired(n: int, **kw: Any) -> list[PhysicalFile]:
    sync = get_file_manager().sync
    return [sync.upload(f"file {i}".encode(), UploadOptions(filename=f"f{i}.txt", hot_duration=0, **kw)) for i in range(n)]


@pytest.mark.django_db(transaction=True)
def test_archive_moves_expired_files_and_reports(s3strata_settings: Env) -> None:
    env = s3strata_settings
    files = upload_expired(5)
    fresh = get_file_manager().sync.upload(b"fresh", UploadOptions(hot_duration=3600))
    dry = operations.archive_expired(dry_run=True)
    assert sorted(dry.would_move) == sorted(f.pk for f in files) and env.keys("COLD") == []
    archived: list[int] = []

    def on_archived(sender: Any, file: PhysicalFile, **kw: Any) -> None:
        archived.append(file.pk)

    signals.file_archived.connect(on_archived)
    try:
        summary = operations.archive_expired(batch_size=2, concurrency=3)
    finally:
        signals.file_archived.disconnect(on_archived)
    assert (summary.moved, summary.skipped, summary.failed) == (5, 0, 0)
    assert sorted(archived) == sorted(f.pk for f in files)  # one signal a file, sent after its batch committed
    assert summary.bytes_moved == sum(len(f"file {i}") for i in range(5))
    assert env.keys("COLD") == sorted(f.path for f in files) and env.keys("HOT") == [fresh.path]
    rows = PhysicalFile.objects.filter(pk__in=[f.pk for f in files])
    assert {r.storage_tier for r in rows} == {"COLD"} and {r.lease_owner for r in rows} == {None}
    assert all(r.size is not None for r in rows)  # learned during the move
    assert operations.archive_expired().moved == 0


@pytest.mark.django_db(transaction=True)
def test_archive_records_each_file_its_own_size(s3strata_settings: Env, django_assert_max_num_queries: Any) -> None:
    sync = get_file_manager().sync
    files = [sync.upload(b"x" * (i * 3 + 1), UploadOptions(filename=f"s{i}.bin", hot_duration=0)) for i in range(8)]
    PhysicalFile.objects.update(size=None, etag=None)  # rows as s3strata-ts writes them: nothing known

    # Eight different sizes cost one bulk UPDATE (3 queries with BEGIN and COMMIT), not one UPDATE each:
    # with the claim (5), the empty claim that ends the run (3), the batch's commit (4), and the object
    # claims (1 to take them on PostgreSQL, 5 elsewhere; 1 to check that no row owns a destination; 1 that
    # no row points at a stale source; 1 to release them), 19 in all.
    bound = (19 if connection.vendor == "postgresql" else 23) + (0 if connection.features.has_select_for_update else 8 * 2)
    with django_assert_max_num_queries(bound):
        assert operations.archive_expired().moved == 8
    # Each row learns its own copy's ETag (the content's MD5) in that one UPDATE. Its size too where the
    # copy was read (two endpoints: a streamed copy); on one endpoint the copy is not read first (one
    # CopyObject, whose answer tells no size), so a row that knew no size still knows none.
    contents = {f.pk: b"x" * (i * 3 + 1) for i, f in enumerate(files)}
    assert dict(PhysicalFile.objects.values_list("pk", "etag")) == {pk: hashlib.md5(c).hexdigest() for pk, c in contents.items()}
    shared = s3strata_settings.config.hot is None
    expected = {pk: None if shared else len(c) for pk, c in contents.items()}
    assert dict(PhysicalFile.objects.values_list("pk", "size")) == expected


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("recorded", ["md5", "none", "not-md5"])
def test_archive_requests_per_file_and_sources_deleted_in_bulk(
    s3strata_settings: Env, django_assert_max_num_queries: Any, recorded: str
) -> None:
    env = s3strata_settings
    files = upload_expired(6)
    assert all(r.size == 6 and r.etag for r in PhysicalFile.objects.all())  # what the upload stored
    if recorded == "none":
        PhysicalFile.objects.update(size=7, etag=None)  # a size but no ETag: the object is read first
    elif recorded == "not-md5":
        # A multipart-style ETag cannot verify a copy by itself (a server may ignore the pin): read first.
        PhysicalFile.objects.update(etag="0" * 32 + "-2")
    store = get_file_manager().objectstore
    sent: list[str] = []
    for client in {id(c): c for c in (store.client("HOT"), store.client("COLD"))}.values():  # one when shared
        client.meta.events.register("before-call.s3.*", lambda model, **kw: sent.append(model.name))
    # With row locks (PostgreSQL) a batch costs the same whatever its size: a claim (4 with BEGIN/COMMIT),
    # a read of the claimed rows, and a commit (BEGIN, one locked read, one UPDATE for all, COMMIT); then
    # one empty claim ends the run. Without them (SQLite) each file commits on its own: a read and a
    # compare-and-set UPDATE. Each batch also claims its object keys (1 statement on PostgreSQL and
    # SQLite, 5 on MariaDB), checks that no row owns a destination (1) or points at the stale sources (1)
    # and releases them (1).
    batched = connection.features.has_select_for_update
    claims = 4 if connection.vendor in ("postgresql", "sqlite") else 8
    with django_assert_max_num_queries(2 * (9 + claims) + 3 if batched else 2 * (5 + claims) + 3 + 6 * 2):
        summary = operations.archive_expired(batch_size=4)
    assert summary.moved == 6
    # One endpoint: a server-side copy pinned to the recorded ETag (else to a HEAD's), whose reported MD5
    # verifies it. Two endpoints: a streamed copy pinned the same way, verified by the MD5 of the bytes
    # read and a HEAD of the copy.
    shared = env.config.hot is None
    per_file = ["CopyObject"] if shared else ["GetObject", "PutObject", "HeadObject"]
    if recorded != "md5" and not shared:
        # Read first. On one endpoint a record without a usable ETag is copied without being read first:
        # one CopyObject of whatever version is there (S3's atomic copy), whose answer tells its ETag.
        per_file = ["HeadObject", *per_file]
    # The sources go in one DeleteObjects per batch, after their rows are committed.
    assert sorted(sent) == sorted(per_file * 6 + ["DeleteObjects"] * 2)
    assert env.keys("HOT") == [] and env.keys("COLD") == sorted(f.path for f in files)
    assert [env.read("COLD", f.path) for f in files] == [f"file {i}".encode() for i in range(6)]


@pytest.mark.django_db(transaction=True)
def test_a_record_that_no_longer_describes_its_object_is_read_first(s3strata_settings: Env) -> None:
    # Overwritten behind our back: the copy pinned to the recorded ETag is refused, the HEAD path copies
    # what is there now, and nothing is lost.
    env = s3strata_settings
    files = upload_expired(3)
    env.put("HOT", files[1].path, b"rewritten elsewhere, longer than before")
    summary = operations.archive_expired()
    assert (summary.moved, summary.failed) == (3, 0)
    assert env.keys("HOT") == [] and env.read("COLD", files[1].path) == b"rewritten elsewhere, longer than before"
    assert [env.read("COLD", f.path) for f in (files[0], files[2])] == [b"file 0", b"file 2"]


@pytest.mark.django_db(transaction=True)
def test_archive_limit_and_failures_are_reported(s3strata_settings: Env) -> None:
    env = s3strata_settings
    files = upload_expired(3)
    env.hot_client.delete_object(Bucket=env.hot_bucket, Key=files[0].path)
    summary = operations.archive_expired(limit=2)
    assert summary.moved + summary.failed == 2
    rest = operations.archive_expired()
    total_failed = summary.failed + rest.failed
    assert total_failed >= 1 and summary.moved + rest.moved == 2
    [failure] = [f for f in summary.failures + rest.failures if f["id"] == files[0].pk][:1]
    assert files[0].path in failure["path"] and "no such object" in failure["error"]
    row = PhysicalFile.objects.get(pk=files[0].pk)
    assert row.storage_tier == "HOT" and row.lease_owner is None  # the lease was released for a retry


@pytest.mark.django_db(transaction=True)
def test_a_live_lease_keeps_other_workers_off(s3strata_settings: Env) -> None:
    [f] = upload_expired(1)
    claimed = operations.claim_expired("worker-a", 10, 600)
    assert [c.pk for c in claimed] == [f.pk]
    assert operations.claim_expired("worker-b", 10, 600) == []
    assert operations.archive_expired().moved == 0
    PhysicalFile.objects.filter(pk=f.pk).update(lease_until=timezone.now() - timedelta(seconds=1))  # worker-a died
    assert operations.archive_expired().moved == 1


@pytest.mark.django_db(transaction=True)
def test_competing_archivers_move_each_file_once(s3strata_settings: Env) -> None:
    env = s3strata_settings
    files = upload_expired(40)
    results: list[operations.ArchiveSummary] = []

    def run() -> None:
        try:
            results.append(operations.archive_expired(batch_size=5, concurrency=2))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.moved for r in results) == 40 and sum(r.failed for r in results) == 0
    assert env.keys("HOT") == [] and env.keys("COLD") == sorted(f.path for f in files)
    assert set(PhysicalFile.objects.values_list("storage_tier", flat=True)) == {"COLD"}


@pytest.mark.django_db(transaction=True)
def test_orphan_sweep_modes(s3strata_settings: Env) -> None:
    env = s3strata_settings
    kept = get_file_manager().sync.upload(b"k")
    env.put("HOT", "private/lost.bin", b"12345")
    env.put("COLD", "public/old.txt", b"abc")
    seen: list[tuple[str, str]] = []
    young = operations.sweep_orphans("delete")  # default 24 h grace: nothing is old enough
    assert (young.found, young.deleted) == (0, 0)
    report = operations.sweep_orphans("report", older_than=0, on_orphan=lambda o, a: seen.append((o.key, a)))
    assert (report.found, report.bytes) == (2, 8) and sorted(seen) == [("private/lost.bin", "found"), ("public/old.txt", "found")]
    dry = operations.sweep_orphans("delete", older_than=0, dry_run=True)
    assert dry.found == 2 and dry.deleted == 0 and "private/lost.bin" in env.keys("HOT")
    only_cold = operations.sweep_orphans("adopt", older_than=0, tier="COLD")
    adopted = PhysicalFile.objects.get(path="public/old.txt")
    assert only_cold.adopted == 1 and adopted.size == 3
    # The listing's ETag is kept, so moving the adopted file needs no HEAD first.
    assert adopted.etag == env.cold_client.head_object(Bucket=env.cold_bucket, Key="public/old.txt")["ETag"].strip('"')
    deleted = operations.sweep_orphans("delete", older_than=0, prefix="private/")
    assert deleted.deleted == 1 and env.keys("HOT") == [kept.path]
    assert operations.sweep_orphans("report", older_than=0).found == 0


@pytest.mark.django_db(transaction=True)
def test_verify_finds_and_repairs(s3strata_settings: Env) -> None:
    env = s3strata_settings
    sync = get_file_manager().sync
    ok = sync.upload(b"ok")
    PhysicalFile.objects.filter(pk=ok.pk).update(size=2)
    gone = sync.upload(b"gone")
    moved = sync.upload(b"moved")
    resized = sync.upload(b"resized")
    PhysicalFile.objects.filter(pk=resized.pk).update(size=999)
    env.hot_client.delete_object(Bucket=env.hot_bucket, Key=gone.path)
    env.put("COLD", moved.path, b"moved")
    env.hot_client.delete_object(Bucket=env.hot_bucket, Key=moved.path)
    report = operations.verify_files()
    assert report.checked == 4 and report.ok == 1
    assert [m["id"] for m in report.missing] == [gone.pk]
    assert [(m["id"], m["found_in"]) for m in report.wrong_tier] == [(moved.pk, "COLD")]
    assert [(m["id"], m["object_size"]) for m in report.size_mismatch] == [(resized.pk, 7)]
    assert PhysicalFile.objects.get(pk=moved.pk).storage_tier == "HOT"
    fixed = operations.verify_files(repair=True)
    assert fixed.repaired == 1 and PhysicalFile.objects.get(pk=moved.pk).storage_tier == "COLD"
    assert operations.verify_files().wrong_tier == []


@pytest.mark.django_db(transaction=True)
def test_the_part_copy_threshold_decides_how_a_move_copies(s3strata_settings: Env, settings: Any) -> None:
    """Above the threshold: read the object, then a copy in parts pinned to its ETag; a row that knows
    nothing is copied with one CopyObject without being read first (its answer tells the ETag)."""
    env = s3strata_settings
    if env.config.hot is not None:
        pytest.skip("server-side copies: one endpoint")
    mib = 1024 * 1024
    settings.S3STRATA = {**settings.S3STRATA, "ADVANCED": {"PART_COPY_THRESHOLD": 5 * mib, "MULTIPART_CHUNKSIZE": 5 * mib}}
    sync = get_file_manager().sync
    store = get_file_manager().objectstore
    sent: list[str] = []
    store.client("HOT").meta.events.register("before-call.s3.*", lambda model, **kw: sent.append(model.name))
    data = os.urandom(6 * mib)
    known = sync.upload(data, UploadOptions(filename="known.bin"))
    unknown = sync.upload(data, UploadOptions(filename="unknown.bin"))
    PhysicalFile.objects.filter(pk=unknown.pk).update(size=None, etag=None)
    assert PhysicalFile.objects.get(pk=known.pk).size == 6 * mib
    sent.clear()
    moved = sync.set_tier(PhysicalFile.objects.get(pk=known.pk), SetTierOptions(tier="COLD"))
    assert "CopyObject" not in sent and sent.count("UploadPartCopy") == 2 and "HeadObject" in sent, sent
    sent.clear()
    moved_unknown = sync.set_tier(PhysicalFile.objects.get(pk=unknown.pk), SetTierOptions(tier="COLD"))
    assert sent == ["CopyObject", "DeleteObject"], sent
    assert env.read("COLD", moved.path) == data and env.read("COLD", moved_unknown.path) == data
    assert PhysicalFile.objects.get(pk=unknown.pk).etag == hashlib.md5(data).hexdigest()
