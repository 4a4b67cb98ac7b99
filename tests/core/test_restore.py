"""The deep archive in the core: states from a HEAD, restore requests, archived reads, moves that wait for a restore."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from django_s3strata.core import (
    ArchiveState,
    FileManager,
    InMemoryAdapter,
    InvalidOptionError,
    ObjectArchivedError,
    RestoreOptions,
    S3StrataAdvancedOptions,
    S3StrataConfig,
    SetTierOptions,
    StorageTier,
    UploadOptions,
)
from django_s3strata.core.restore import parse_restore_header, recorded_status, status_of
from django_s3strata.core.types import ObjectInfo, PhysicalFile
from tests.conftest import Env, config_via, make_env
from tests.faults import FaultProxy, Faults, SlowRestores
from tests.s3server import MotoS3Server


@pytest.fixture
def slow(moto_server: MotoS3Server, moto_server_b: MotoS3Server) -> Iterator[tuple[Faults, FaultProxy, FaultProxy]]:
    """Fault proxies in front of both servers whose restores stay ongoing until ``faults.restores.finish()``."""
    faults = Faults()
    faults.restores = SlowRestores()
    a = FaultProxy(moto_server.host, moto_server.port, faults).start()
    b = FaultProxy(moto_server_b.host, moto_server_b.port, faults).start()
    yield faults, a, b
    a.stop()
    b.stop()


def archive_config(env: Env, a: FaultProxy, b: FaultProxy, layout: str, storage_class: str = "GLACIER") -> S3StrataConfig:
    """Return ``env``'s configuration through the proxies, COLD writing ``storage_class``."""
    return config_via(env, a, b, layout, S3StrataAdvancedOptions(cold_storage_class=storage_class, max_attempts=1))


def test_restore_header_parsed() -> None:
    assert parse_restore_header(None) == (None, None)
    assert parse_restore_header('ongoing-request="true"') == (True, None)
    ongoing, expires = parse_restore_header('ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"')
    assert ongoing is False and expires == datetime(2012, 12, 21, tzinfo=UTC)


def test_states_from_a_head() -> None:
    later = (datetime.now(UTC) + timedelta(days=2)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert status_of(ObjectInfo("k", 1)).state is ArchiveState.READABLE
    assert status_of(ObjectInfo("k", 1, storage_class="GLACIER_IR")).state is ArchiveState.READABLE
    assert status_of(ObjectInfo("k", 1, storage_class="DEEP_ARCHIVE")).state is ArchiveState.ARCHIVED
    assert (
        status_of(ObjectInfo("k", 1, storage_class="GLACIER", restore='ongoing-request="true"')).state is ArchiveState.RESTORING
    )
    restored = status_of(ObjectInfo("k", 1, storage_class="GLACIER", restore=f'ongoing-request="false", expiry-date="{later}"'))
    assert restored.state is ArchiveState.RESTORED and restored.retrievable and str(restored).startswith("restored until ")
    gone = 'ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"'
    assert status_of(ObjectInfo("k", 1, storage_class="GLACIER", restore=gone)).state is ArchiveState.ARCHIVED
    tiering = ObjectInfo("k", 1, storage_class="INTELLIGENT_TIERING", archive_status="DEEP_ARCHIVE_ACCESS")
    assert status_of(tiering).state is ArchiveState.ARCHIVED


def test_states_a_record_knows_without_a_request() -> None:
    plain = PhysicalFile(1, "COLD", "a.txt", "private/a.txt", None)
    assert recorded_status(plain, "GLACIER") is None  # a record that keeps no state: only S3 can tell

    class Row(PhysicalFile):
        archive_state: str | None = None
        restore_expires: datetime | None = None

    row = Row(1, "COLD", "a.txt", "private/a.txt", None)
    assert recorded_status(row, "GLACIER").state is ArchiveState.ARCHIVED  # type: ignore[union-attr]
    assert recorded_status(row, None).state is ArchiveState.READABLE  # type: ignore[union-attr]
    row.archive_state, row.restore_expires = "RESTORED", datetime.now(UTC) - timedelta(seconds=1)
    assert recorded_status(row, "GLACIER").state is ArchiveState.ARCHIVED  # type: ignore[union-attr]


@pytest.mark.parametrize("days,retrieval", [(0, "Standard"), (366, "Bulk"), (True, "Bulk"), (1, "Fast")])
def test_bad_restore_options_are_refused_before_any_request(days: Any, retrieval: str, manager: FileManager) -> None:
    record = PhysicalFile(1, "COLD", "a.txt", "private/a.txt", None)
    with pytest.raises(InvalidOptionError):
        manager.sync.restore(record, RestoreOptions(days, retrieval))


def test_archive_read_restore_once_then_move_back(env: Env, slow: tuple[Faults, FaultProxy, FaultProxy], request: Any) -> None:
    """Both layouts: an archived object fails reads and moves clearly, is restored once, then moves back with its bytes."""
    faults, a, b = slow
    layout = request.node.callspec.params["env"]
    sync = FileManager(archive_config(env, a, b, layout), InMemoryAdapter()).sync
    data = b"invoice 2026-0042 " * 1000
    record = sync.upload(data, UploadOptions(tier="HOT", filename="invoice.pdf"))
    record = sync.set_tier(record, SetTierOptions(StorageTier.COLD))
    head = env.cold_client.head_object(Bucket=env.cold_bucket, Key=record.path)
    assert head["StorageClass"] == "GLACIER"
    assert sync.restore_status(record).state is ArchiveState.ARCHIVED

    with pytest.raises(ObjectArchivedError, match="restore") as caught:
        sync.open(record).read()
    assert caught.value.code == "InvalidObjectState" and caught.value.storage_class == "GLACIER"
    with pytest.raises(ObjectArchivedError, match="until it is restored"):
        sync.set_tier(record, SetTierOptions(StorageTier.HOT))

    first = sync.restore(record, RestoreOptions(days=2, retrieval="Expedited"))
    second = sync.restore(record, RestoreOptions(days=2, retrieval="Expedited"))
    assert first.requested and first.status.state is ArchiveState.RESTORING and "1-5 minutes" in first.message
    assert not second.requested and "already under way" in second.message
    assert faults.count("RestoreObject") == 1
    # S3's own answer to a second request while one runs (409) changes nothing either.
    assert sync.objectstore.restore_object(StorageTier.COLD, record.path, 2, "Expedited") is False

    # Without a place to keep the pending move, a move asked with restore=True says the restore runs.
    with pytest.raises(ObjectArchivedError, match="restore is under way") as pending:
        sync.set_tier(record, SetTierOptions(StorageTier.HOT, restore=True))
    assert pending.value.restoring
    assert faults.count("RestoreObject") == 2  # the 409 above, not one more from the move
    assert env.keys("HOT") == []

    faults.restores.finish()  # type: ignore[union-attr]
    restored = sync.restore_status(record)
    assert restored.state is ArchiveState.RESTORED and restored.expires is not None
    assert sync.open(record).read() == data
    moved = sync.set_tier(record, SetTierOptions(StorageTier.HOT))
    assert moved.storage_tier == StorageTier.HOT and env.read("HOT", moved.path) == data
    assert env.keys("COLD") == []
    assert sync.restore_status(moved).state is ArchiveState.READABLE


def test_a_move_out_of_intelligent_tiering_asks_first(moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Intelligent-Tiering archives objects by itself (no server here does): a HEAD tells, then one restore is requested."""
    env = make_env("shared", moto_server, moto_server, cold_storage_class="INTELLIGENT_TIERING")
    fm = FileManager(env.config, InMemoryAdapter())
    f = fm.sync.upload(b"data", UploadOptions(filename="a.bin", tier="COLD"))
    store, real_head, calls = fm.objectstore, fm.objectstore.head, []

    def head(tier: StorageTier, key: str) -> ObjectInfo | None:
        info = real_head(tier, key)
        if info is not None:
            info.archive_status = "ARCHIVE_ACCESS"  # as S3 reports an object in the Archive Access tier
        calls.append("HeadObject")
        return info

    def restore_object(*args: Any, **kwargs: Any) -> bool:
        calls.append("RestoreObject")
        return True

    monkeypatch.setattr(store, "head", head)
    monkeypatch.setattr(store, "restore_object", restore_object)
    # The in-memory adapter keeps no pending move: it says the file is archived, after requesting the restore.
    with pytest.raises(ObjectArchivedError):
        fm.sync.set_tier(f, SetTierOptions("HOT", restore=True))
    assert calls == ["HeadObject", "RestoreObject"] and env.keys("HOT") == []
