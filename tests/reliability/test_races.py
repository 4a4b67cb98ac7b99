"""Two writers on one file, interleaved on purpose at the worst moment: the row always names its bytes.

Each test stops writer A at a chosen step (by wrapping one ObjectStore method), starts writer B in
a thread while A is stopped, lets A go on, and then looks behind the library's back: the row, and
the bytes in both buckets. Without the claims, each of these lost the file (issue #15).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.db import connections, transaction

from django_s3strata import get_file_manager, operations
from django_s3strata.core import UploadOptions
from django_s3strata.core.exceptions import ConfigurationError, ConflictError, StorageError
from django_s3strata.core.manager import FileManager
from django_s3strata.core.types import StorageTier
from django_s3strata.models import ObjectClaim, PhysicalFile
from django_s3strata.storage import S3StrataStorage
from tests.conftest import Env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def racing(s3strata_settings: Env, settings: Any) -> Env:
    """The live buckets, with writers that wait up to 20 s for each other's claims."""
    settings.S3STRATA = {**settings.S3STRATA, "ADVANCED": {"CLAIM_WAIT": 20}}
    return s3strata_settings


class Writer(threading.Thread):
    """Writer B: runs ``work`` in a thread of its own (with its own database connection)."""

    def __init__(self, work: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.work, self.result, self.error = work, None, None

    def run(self) -> None:
        try:
            self.result = self.work()
        except Exception as exc:
            self.error = exc
        finally:
            connections.close_all()

    def finish(self) -> Any:
        self.join(60)
        assert not self.is_alive(), "writer B never finished"
        if self.error is not None:
            raise self.error
        return self.result


def stop_a_at(monkeypatch: pytest.MonkeyPatch, method: str, when: Callable[..., bool], b: Writer, fail: bool = False) -> None:
    """Wrap ObjectStore.<method>: A's first call that ``when`` matches starts B and waits for it to block."""
    store = get_file_manager().objectstore
    real = getattr(store, method)
    fired: list[bool] = []
    lock = threading.Lock()

    def first(*args: Any) -> bool:
        with lock:
            if threading.current_thread() is b or fired or not when(*args):
                return False
            fired.append(True)
            return True

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if first(*args):
            b.start()
            time.sleep(1.0)  # B runs now: with claims it waits for A; without them it would do its damage here
            assert b.is_alive(), "writer B did not wait for writer A's claim"
            if fail:
                raise StorageError("simulated failure", operation=method, transient=True)
        return real(*args, **kwargs)

    monkeypatch.setattr(store, method, wrapped)


def holds(env: Env, record: PhysicalFile, data: bytes) -> None:
    """Assert that the row names an object holding ``data`` and that no other copy is left."""
    record = PhysicalFile.objects.get(pk=record.pk)
    assert env.read(record.storage_tier, record.path) == data
    other = "COLD" if record.storage_tier == "HOT" else "HOT"
    assert env.keys(other) == [] and env.keys(record.storage_tier) == [record.path]
    assert not ObjectClaim.objects.exists()  # every writer released its claims


def upload(data: bytes, **options: Any) -> PhysicalFile:
    options.setdefault("filename", "f.bin")
    record: PhysicalFile = get_file_manager().sync.upload(data, UploadOptions(**options))  # type: ignore[assignment]
    return PhysicalFile.objects.get(pk=record.id)


def test_round_trip_waits_for_the_stale_source_delete(racing: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A takes HOT→COLD and commits; before A deletes the HOT source, B takes the row back to HOT."""
    f = upload(b"round trip")
    b = Writer(lambda: PhysicalFile.objects.get(pk=f.pk).set_tier("HOT"))
    stop_a_at(monkeypatch, "delete", lambda tier, key: tier is StorageTier.HOT, b)
    PhysicalFile.objects.get(pk=f.pk).archive()
    b.finish()
    assert PhysicalFile.objects.get(pk=f.pk).storage_tier == "HOT"
    holds(racing, f, b"round trip")


def test_archival_batch_round_trip_waits_for_the_bulk_delete(racing: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch commits (ending its lease); before its bulk delete of the sources, B promotes a file back."""
    f = upload(b"batch", hot_duration=0)
    b = Writer(lambda: PhysicalFile.objects.get(pk=f.pk).set_tier("HOT"))
    stop_a_at(monkeypatch, "delete_many", lambda tier, keys: tier is StorageTier.HOT, b)
    assert operations.archive_expired().moved == 1
    b.finish()
    holds(racing, f, b"batch")


def test_visibility_round_trip_waits_for_the_stale_source_delete(racing: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    f = upload(b"public, private, public", visibility="PUBLIC")
    b = Writer(lambda: PhysicalFile.objects.get(pk=f.pk).set_visibility("PUBLIC"))
    stop_a_at(monkeypatch, "delete", lambda tier, key: key.startswith("public/"), b)
    PhysicalFile.objects.get(pk=f.pk).set_visibility("PRIVATE")
    b.finish()
    assert PhysicalFile.objects.get(pk=f.pk).path.startswith("public/")
    holds(racing, f, b"public, private, public")


def test_a_failed_copy_cleans_up_only_its_own_copy(racing: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A (the archiver) and B (the admin's "Archive now") move one file to COLD; A's copy fails."""
    f = upload(b"two movers", hot_duration=0)
    b = Writer(lambda: PhysicalFile.objects.get(pk=f.pk).archive())
    stop_a_at(monkeypatch, "copy", lambda *args: True, b, fail=True)
    summary = operations.archive_expired()
    assert summary.failed == 1 and summary.moved == 0
    b.finish()
    assert PhysicalFile.objects.get(pk=f.pk).storage_tier == "COLD"
    holds(racing, f, b"two movers")


def test_a_delete_waits_for_a_move(racing: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """B deletes the file while A is copying it to COLD: B waits, then deletes it where A left it."""
    f = upload(b"moving, then deleted")
    b = Writer(lambda: PhysicalFile.objects.get(pk=f.pk).delete())
    stop_a_at(monkeypatch, "copy", lambda *args: True, b)
    PhysicalFile.objects.get(pk=f.pk).archive()
    b.finish()
    assert not PhysicalFile.objects.filter(pk=f.pk).exists()
    assert racing.keys("HOT") == [] and racing.keys("COLD") == []
    assert not ObjectClaim.objects.exists()


def test_a_sweep_never_deletes_a_move_in_flight(racing: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The orphan sweep (grace 0) lists A's verified copy before A commits it: the claim keeps it."""
    f = upload(b"in flight")

    def sweep() -> Any:
        return operations.sweep_orphans("delete", older_than=0)

    b = Writer(sweep)
    real_copy = get_file_manager().objectstore.copy
    store = get_file_manager().objectstore
    seen: list[Any] = []

    def copy_then_sweep(*args: Any, **kwargs: Any) -> Any:
        result = real_copy(*args, **kwargs)
        if not seen:
            seen.append(True)
            b.start()
            b.join(30)  # the sweep runs to its end between A's copy and A's commit
        return result

    monkeypatch.setattr(store, "copy", copy_then_sweep)
    PhysicalFile.objects.get(pk=f.pk).archive()
    summary = b.finish()
    assert summary.deleted == 0 and summary.skipped == 1  # A's copy was seen, and left alone
    holds(racing, f, b"in flight")


def test_adopting_a_stale_copy_of_a_file_with_a_row_is_refused(racing: Env) -> None:
    """A stale source left by a failed delete is not a new file: adopting it would give one file two rows."""
    f = upload(b"one file")
    racing.put("COLD", f.path, b"one file")  # a stale copy in the other tier (as a move whose delete failed leaves)
    summary = operations.sweep_orphans("adopt", older_than=0)
    assert summary.adopted == 0 and summary.skipped == 1
    assert PhysicalFile.objects.count() == 1
    assert operations.sweep_orphans("delete", older_than=0).deleted == 1
    holds(racing, f, b"one file")


def test_a_delete_in_a_rolled_back_transaction_keeps_row_and_object(racing: Env) -> None:
    f = upload(b"kept")
    with pytest.raises(RuntimeError), transaction.atomic():
        PhysicalFile.objects.get(pk=f.pk).delete()
        raise RuntimeError("roll back")
    holds(racing, f, b"kept")
    with transaction.atomic():
        PhysicalFile.objects.get(pk=f.pk).delete()
        assert racing.keys("HOT") == [f.path]  # not before the commit
    assert racing.keys("HOT") == [] and not PhysicalFile.objects.exists()


def test_a_move_in_a_rolled_back_transaction_keeps_the_source(racing: Env) -> None:
    f = upload(b"moved, then rolled back")
    with pytest.raises(RuntimeError), transaction.atomic():
        PhysicalFile.objects.get(pk=f.pk).archive()
        raise RuntimeError("roll back")
    record = PhysicalFile.objects.get(pk=f.pk)
    assert record.storage_tier == "HOT" and racing.read("HOT", record.path) == b"moved, then rolled back"
    # The copy the rolled-back move made is an orphan, which one sweep removes.
    assert operations.sweep_orphans("delete", older_than=0).deleted == 1
    holds(racing, f, b"moved, then rolled back")


def test_tiers_that_would_copy_onto_themselves_are_refused_at_runtime(racing: Env) -> None:
    config = racing.config
    same = type(config)(**{**config.__dict__, "cold_bucket": config.hot_bucket or racing.hot_bucket})
    if config.hot is not None:
        same = type(config)(**{**config.__dict__, "cold": type(config.hot)(**{**config.hot.__dict__})})
    with pytest.raises(ConfigurationError, match=r"HOT and COLD share the bucket .* a key would belong to both tiers"):
        FileManager(same, get_file_manager().adapter)


def test_the_row_matches_the_object_after_a_storage_save(racing: Env) -> None:
    storage = S3StrataStorage()
    name = storage.save("a.png", ContentFile(b"\x89PNG not really"))
    record = PhysicalFile.objects.get()
    head = racing.client("HOT").head_object(Bucket=racing.hot_bucket, Key=record.path)
    assert (record.size, record.content_type) == (len(b"\x89PNG not really"), "image/png")
    assert (head["ContentLength"], head["ContentType"], head["ETag"].strip('"')) == (record.size, "image/png", record.etag)
    assert storage.exists(name)


def test_archival_skips_files_a_dead_writer_still_claims(racing: Env) -> None:
    """A killed writer's claims last CLAIM_SECONDS: archival skips its files once per run, and ends."""
    held = upload(b"held by a dead writer", hot_duration=0)
    free = upload(b"free", hot_duration=0)
    claims = get_file_manager().sync.adapter.claim_keys("dead-host:1:gone", [(StorageTier.HOT, held.path)], 900)
    assert claims == {}
    started = time.monotonic()
    summary = operations.archive_expired(batch_size=1)
    assert (summary.moved, summary.skipped, summary.failed) == (1, 1, 0) and time.monotonic() - started < 30
    assert (
        PhysicalFile.objects.get(pk=held.pk).storage_tier == "HOT" and racing.read("HOT", held.path) == b"held by a dead writer"
    )
    assert PhysicalFile.objects.get(pk=free.pk).storage_tier == "COLD"


def test_the_async_api_in_a_rolled_back_transaction_keeps_the_object(racing: Env) -> None:
    """async_to_sync from a sync caller's atomic(): the async ORM joins that transaction, so the delete waits for it."""
    from asgiref.sync import async_to_sync

    f = upload(b"async, rolled back")
    with pytest.raises(RuntimeError), transaction.atomic():
        async_to_sync(get_file_manager().delete)(PhysicalFile.objects.get(pk=f.pk))
        raise RuntimeError("roll back")
    holds(racing, f, b"async, rolled back")


def test_a_move_onto_a_key_another_row_owns_is_refused(racing: Env) -> None:
    """Two files given the same path suffix: archiving the second must not overwrite the first's bytes."""
    first = upload(b"AAAA", path_suffix="user1/avatar.png")
    PhysicalFile.objects.get(pk=first.pk).archive()
    second = upload(b"BBBBBB", path_suffix="user1/avatar.png", hot_duration=0)
    with pytest.raises(ConflictError, match="belongs to another record"):
        PhysicalFile.objects.get(pk=second.pk).archive()
    first = PhysicalFile.objects.get(pk=first.pk)
    assert racing.read("COLD", first.path) == b"AAAA" and racing.read("HOT", second.path) == b"BBBBBB"
    assert operations.archive_expired().skipped == 1  # archival skips it the same way
    assert racing.read("COLD", first.path) == b"AAAA"
