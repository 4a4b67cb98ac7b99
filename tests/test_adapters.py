"""One contract suite for every StorageAdapter, async and sync faces: InMemoryAdapter and DjangoORMAdapter."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from django_s3strata.adapters import DjangoORMAdapter
from django_s3strata.core import UNSET, InMemoryAdapter, StorageTier


class Face:
    """Call the adapter through its async methods or its sync face."""

    def __init__(self, adapter: Any, kind: str) -> None:
        self.target = adapter.as_sync() if kind == "sync" else adapter
        self.kind = kind

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.target, name)
        if self.kind == "sync":
            return method

        async def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return await method(*args, **kwargs)
            finally:  # the async ORM's worker thread keeps a connection open otherwise
                await sync_to_async(connections.close_all)()

        return lambda *a, **kw: asyncio.run(call(*a, **kw))


# The async ORM runs its queries on another thread: those cases need a transactional database.
ORM = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["memory-async", "memory-sync", pytest.param("orm-async", marks=ORM), pytest.param("orm-sync", marks=ORM)])
def adapter(request: pytest.FixtureRequest) -> Face:
    kind, face = request.param.split("-")
    return Face(DjangoORMAdapter() if kind == "orm" else InMemoryAdapter(), face)


def test_create_and_find(adapter: Face) -> None:
    until = datetime.now(UTC) + timedelta(hours=1)
    record = adapter.create(StorageTier.HOT, "a.txt", "private/u-a.txt", until)
    assert (record.storage_tier, record.filename, record.path) == ("HOT", "a.txt", "private/u-a.txt")
    assert abs(record.hot_until - until) < timedelta(milliseconds=1)
    assert record.created_at is not None and record.created_at.tzinfo is not None and record.updated_at is not None
    found = adapter.find_by_id(record.id)
    assert found.path == record.path and found.id == record.id
    assert adapter.find_by_id(999_999) is None


def test_update_changes_only_given_fields_and_none_clears(adapter: Face) -> None:
    record = adapter.create(StorageTier.HOT, "b", "private/b", datetime.now(UTC))
    moved = adapter.update(record.id, path="public/b")
    assert moved.path == "public/b" and moved.storage_tier == "HOT" and moved.hot_until is not None
    cold = adapter.update(record.id, storage_tier=StorageTier.COLD, hot_until=None)
    assert cold.storage_tier == "COLD" and cold.hot_until is None and cold.path == "public/b"
    same = adapter.update(record.id, storage_tier=UNSET, path=UNSET, hot_until=UNSET)
    assert (same.storage_tier, same.path, same.hot_until) == ("COLD", "public/b", None)
    assert same.updated_at >= record.updated_at


def test_expired_all_delete_and_bulk_lookup(adapter: Face) -> None:
    past, future = datetime.now(UTC) - timedelta(seconds=5), datetime.now(UTC) + timedelta(hours=1)
    expired = adapter.create(StorageTier.HOT, "e", "private/e", past)
    adapter.create(StorageTier.HOT, "f", "private/f", future)
    adapter.create(StorageTier.COLD, "c", "private/c", past)
    adapter.create(StorageTier.HOT, "n", "private/n", None)
    assert [f.id for f in adapter.find_expired_hot_files()] == [expired.id]
    assert len(adapter.find_all()) == 4
    assert adapter.find_existing_paths(StorageTier.HOT, ["private/e", "private/c", "private/x"]) == {"private/e"}
    assert adapter.find_existing_paths(StorageTier.COLD, ["private/e", "private/c"]) == {"private/c"}
    adapter.delete(expired.id)
    assert adapter.find_by_id(expired.id) is None
    adapter.delete(expired.id)  # deleting twice is harmless
    assert len(adapter.find_all()) == 3


def test_update_if_commits_only_at_the_expected_location(adapter: Face) -> None:
    record = adapter.create(StorageTier.HOT, "g", "private/g", datetime.now(UTC))
    assert adapter.update_if(record.id, StorageTier.HOT, "public/g", path="public/x") is None
    assert adapter.update_if(record.id, StorageTier.COLD, "private/g", storage_tier=StorageTier.COLD) is None
    assert adapter.find_by_id(record.id).path == "private/g"
    moved = adapter.update_if(record.id, StorageTier.HOT, "private/g", storage_tier=StorageTier.COLD, hot_until=None)
    assert (moved.storage_tier, moved.path, moved.hot_until) == ("COLD", "private/g", None)
    found = adapter.find_by_id(record.id)
    assert (found.storage_tier, found.path, found.hot_until) == ("COLD", "private/g", None)
    # The second of two racing moves from the same place changes nothing.
    assert adapter.update_if(record.id, StorageTier.HOT, "private/g", path="public/g") is None
    assert adapter.find_by_id(record.id).path == "private/g"
    adapter.delete(record.id)
    assert adapter.update_if(record.id, StorageTier.COLD, "private/g", path="public/g") is None


def test_update_many_if_commits_each_row_still_in_place(adapter: Face) -> None:
    a = adapter.create(StorageTier.HOT, "a", "private/a", datetime.now(UTC))
    b = adapter.create(StorageTier.HOT, "b", "private/b", datetime.now(UTC))
    c = adapter.create(StorageTier.HOT, "c", "private/c", None)
    adapter.update(b.id, path="public/b")  # b moved on since it was read
    cold = {"storage_tier": StorageTier.COLD, "hot_until": None}
    gone = copy.copy(a)
    gone.id = 999_999
    moves = [(a, cold), (b, cold), (c, {"path": "public/c"}), (gone, cold)]
    done = adapter.update_many_if(moves)
    assert [r is not None for r in done] == [True, False, True, False]
    assert (done[0].storage_tier, done[0].hot_until, done[2].path) == ("COLD", None, "public/c")
    found = {r.id: r for r in adapter.find_all()}
    assert (found[a.id].storage_tier, found[a.id].path, found[a.id].hot_until) == ("COLD", "private/a", None)
    assert (found[b.id].storage_tier, found[b.id].path) == ("HOT", "public/b")
    assert (found[c.id].storage_tier, found[c.id].path) == ("HOT", "public/c")


# -- concurrent async creates share INSERTs -------------------------------------------------------


def _gather_creates(adapter: DjangoORMAdapter, names: list[str], until: Any = None) -> list[Any]:
    async def run() -> list[Any]:
        try:
            return await asyncio.gather(
                *(adapter.create(StorageTier.HOT, n, f"private/{n}", until) for n in names), return_exceptions=True
            )
        finally:
            await sync_to_async(connections.close_all)()

    return asyncio.run(run())


@ORM
def test_concurrent_async_creates_share_inserts_and_each_gets_its_own_row() -> None:
    from django_s3strata import inserts
    from django_s3strata.models import PhysicalFile

    batches: list[int] = []

    def counted(rows: list[dict[str, Any]]) -> list[Any]:
        batches.append(len(rows))
        return inserts.insert_rows(rows)

    adapter = DjangoORMAdapter()
    adapter._inserts = inserts.AsyncInserts(counted)
    names = [f"f{i}.bin" for i in range(40)]
    records = _gather_creates(adapter, names)
    assert sum(batches) == 40 and len(batches) < 40 and max(batches) > 1
    rows = {r.pk: r for r in PhysicalFile.objects.all()}
    assert len(rows) == 40
    for name, record in zip(names, records, strict=True):
        assert (record.filename, record.path) == (name, f"private/{name}")
        assert (rows[record.pk].filename, rows[record.pk].path, rows[record.pk].storage_tier) == (name, f"private/{name}", "HOT")


@ORM
def test_a_bad_row_in_a_shared_insert_fails_alone() -> None:
    from django.core.exceptions import ValidationError

    from django_s3strata.models import PhysicalFile

    adapter = DjangoORMAdapter()

    async def run() -> list[Any]:
        try:
            good = [adapter.create(StorageTier.HOT, f"g{i}", f"private/g{i}", None) for i in range(10)]
            bad = adapter.create(StorageTier.HOT, "bad", "private/bad", "not a date")  # type: ignore[arg-type]
            return await asyncio.gather(*good[:5], bad, *good[5:], return_exceptions=True)
        finally:
            await sync_to_async(connections.close_all)()

    outcomes = asyncio.run(run())
    assert isinstance(outcomes[5], ValidationError)
    assert sorted(PhysicalFile.objects.values_list("path", flat=True)) == sorted(f"private/g{i}" for i in range(10))
    assert all(o.pk is not None for i, o in enumerate(outcomes) if i != 5)


@ORM
def test_model_save_receivers_still_see_each_row() -> None:
    from django.db.models.signals import post_save

    from django_s3strata.models import PhysicalFile

    seen: list[str] = []

    def receiver(sender: Any, instance: PhysicalFile, created: bool, **kwargs: Any) -> None:
        seen.append(instance.path)

    post_save.connect(receiver, sender=PhysicalFile)
    try:
        _gather_creates(DjangoORMAdapter(), [f"s{i}" for i in range(8)])
    finally:
        post_save.disconnect(receiver, sender=PhysicalFile)
    assert sorted(seen) == sorted(f"private/s{i}" for i in range(8))


@pytest.mark.django_db(transaction=True)
def test_a_row_created_inside_a_transaction_is_the_transactions() -> None:
    from django.db import transaction

    from django_s3strata.adapters import DjangoORMSyncAdapter
    from django_s3strata.models import PhysicalFile

    adapter = DjangoORMSyncAdapter()
    until = datetime.now(UTC) + timedelta(days=1)
    kept = adapter.create(StorageTier.HOT, "ü a.pdf", "public/u-ü a.pdf", until)
    assert PhysicalFile.objects.get(pk=kept.pk).filename == "ü a.pdf" and not kept._state.adding
    with pytest.raises(RuntimeError), transaction.atomic():
        gone = adapter.create(StorageTier.COLD, "b", "private/b", None)
        assert PhysicalFile.objects.filter(pk=gone.pk).exists()
        raise RuntimeError
    assert not PhysicalFile.objects.filter(pk=gone.pk).exists()


# -- the async face derived from the sync one: signals, transactions, caches --------------------


@pytest.fixture
def heard() -> Any:
    from django_s3strata import signals

    events: list[str] = []

    def receiver(sender: Any, file: Any, signal: Any, **kwargs: Any) -> None:
        events.append(name_of[signal])

    async def areceiver(sender: Any, file: Any, signal: Any, **kwargs: Any) -> None:
        events.append("async " + name_of[signal])

    names = ("file_uploaded", "file_tier_changed", "file_deleted", "file_visibility_changed")
    name_of = {getattr(signals, n): n for n in names}
    for signal in name_of:
        signal.connect(receiver, weak=False)
        signal.connect(areceiver, weak=False)
    yield events
    for signal in name_of:
        signal.disconnect(receiver)
        signal.disconnect(areceiver)


def _run(coroutine_fn: Any, *args: Any, **kwargs: Any) -> Any:
    async def call() -> Any:
        try:
            return await coroutine_fn(*args, **kwargs)
        finally:
            await sync_to_async(connections.close_all)()

    return asyncio.run(call())


@ORM
def test_the_async_face_sends_each_signal_once_to_sync_and_async_receivers(heard: list[str]) -> None:
    adapter = DjangoORMAdapter()
    record = _run(adapter.create, StorageTier.HOT, "a", "private/a", None)
    _run(adapter.update, record.pk, storage_tier=StorageTier.COLD)
    _run(adapter.update_if, record.pk, StorageTier.COLD, "private/a", path="public/a")
    _run(adapter.delete, record.pk)
    for name in ("file_uploaded", "file_tier_changed", "file_visibility_changed", "file_deleted"):
        assert heard.count(name) == 1 and heard.count("async " + name) == 1, heard


@ORM
def test_the_async_face_inside_a_rolled_back_transaction_sends_nothing(heard: list[str]) -> None:
    from asgiref.sync import async_to_sync
    from django.db import transaction

    from django_s3strata.models import PhysicalFile

    adapter = DjangoORMAdapter()
    base = adapter.as_sync().create(StorageTier.HOT, "b", "private/b", None)
    heard.clear()
    with pytest.raises(RuntimeError), transaction.atomic():
        async_to_sync(adapter.create)(StorageTier.HOT, "c", "private/c", None)
        async_to_sync(adapter.update)(base.pk, storage_tier=StorageTier.COLD)
        raise RuntimeError
    assert not PhysicalFile.objects.filter(path="private/c").exists()
    assert heard == []


@ORM
def test_the_async_face_of_a_custom_sync_adapter_creates_through_it() -> None:
    from django_s3strata.adapters import DjangoORMSyncAdapter

    calls: list[str] = []

    class Audited(DjangoORMSyncAdapter):
        def create(self, *args: Any, **kwargs: Any) -> Any:
            calls.append("create")
            return super().create(*args, **kwargs)

    adapter = DjangoORMAdapter(Audited())
    _run(adapter.create, StorageTier.HOT, "d", "private/d", None)
    assert calls == ["create"]


@ORM
def test_an_async_move_run_from_a_script_makes_every_threads_name_cache_forget(s3strata_settings: Any) -> None:
    from django.core.files.base import ContentFile

    from django_s3strata import get_file_manager
    from django_s3strata.core import SetTierOptions
    from django_s3strata.models import PhysicalFile
    from django_s3strata.storage import _records, prefetch_files
    from tests.testapp.models import Report

    Report.objects.create(name="r", pdf=ContentFile(b"%PDF r", name="annual.pdf"))
    reports = list(Report.objects.all())
    prefetch_files(reports, "pdf")
    assert _records()
    record = PhysicalFile.objects.get()
    _run(get_file_manager().set_tier, record, SetTierOptions(StorageTier.COLD))  # a command using the async API
    assert not _records()
    assert f"/{get_file_manager().objectstore.tier(StorageTier.COLD).bucket}/" in reports[0].pdf.url
