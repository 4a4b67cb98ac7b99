"""Declared adapter abilities at their edges: inferred features, derived faces, adapters of every shape."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from django_s3strata.core import (
    AdapterFeatures,
    ConfigurationError,
    FileManager,
    InMemoryAdapter,
    OrphanPolicy,
    PhysicalFile,
    SetHotDurationOptions,
    SetTierOptions,
    StorageAdapter,
    StorageTier,
    SyncBackedAdapter,
    SyncStorageAdapter,
    UploadOptions,
)
from django_s3strata.core.adapters import features_of
from django_s3strata.core.types import ObjectInfo
from tests.conftest import Env, make_env


class UpstreamSync(SyncStorageAdapter):
    """A sync adapter written as upstream's README shows: ``None`` means "not given" in ``update``."""

    def __init__(self) -> None:
        self.files: dict[int, PhysicalFile] = {}

    def create(self, storage_tier: Any, filename: str, path: str, hot_until: Any) -> PhysicalFile:
        record = PhysicalFile(len(self.files) + 1, storage_tier, filename, path, hot_until, datetime.now(UTC))
        self.files[record.id] = record  # type: ignore[index]
        return record

    def find_by_id(self, id: Any) -> PhysicalFile | None:
        return self.files.get(id)

    def update(self, id: Any, storage_tier: Any = None, path: Any = None, hot_until: Any = None) -> PhysicalFile:
        record = self.files[id]
        record.storage_tier = storage_tier if storage_tier is not None else record.storage_tier
        record.path = path if path is not None else record.path
        record.hot_until = hot_until if hot_until is not None else record.hot_until
        return record

    def delete(self, id: Any) -> None:
        self.files.pop(id, None)

    def find_expired_hot_files(self) -> list[PhysicalFile]:
        return []

    def find_all(self) -> list[PhysicalFile]:
        return list(self.files.values())


@pytest.fixture
def shared(moto_server: Any, moto_server_b: Any) -> Env:
    return make_env("shared", moto_server, moto_server_b)


def test_derived_async_face_never_passes_unset_to_an_upstream_style_update(shared: Env) -> None:
    manager = FileManager(shared.config, SyncBackedAdapter(UpstreamSync()))

    async def run() -> str:
        record = await manager.upload(b"x", UploadOptions(filename="a.txt", hot_duration=60))
        record = await manager.set_hot_duration(record, SetHotDurationOptions(3600))
        assert record.storage_tier == StorageTier.HOT and record.path.startswith("private/")
        return await manager.get_url(record)

    assert "a.txt" in asyncio.run(run())


def test_an_adapter_that_subclasses_neither_contract_works_on_both_faces(shared: Env) -> None:
    inner = InMemoryAdapter()

    class Duck:  # a plain object with the contract's async methods, as the old manager accepted
        pass

    names = ["create", "find_by_id", "update", "delete", "find_expired_hot_files", "find_all", "update_if"]
    names += ["find_existing_paths", "claim_keys", "release_keys"]
    duck = Duck()
    for name in names:
        setattr(duck, name, getattr(inner, name))

    manager = FileManager(shared.config, duck)  # type: ignore[arg-type]
    assert manager.features.update_if and manager.features.claims and not manager.features.create_stored
    record = manager.sync.upload(b"duck", UploadOptions(filename="d.txt"))
    moved = manager.sync.set_tier(record, SetTierOptions(StorageTier.COLD))
    assert moved.storage_tier == StorageTier.COLD and shared.read("COLD", moved.path) == b"duck"


def test_the_sync_face_uses_its_own_adapters_features(shared: Env) -> None:
    class AsyncWithCas(InMemoryAdapter):
        def as_sync(self) -> SyncStorageAdapter:
            return UpstreamSync()  # a hand-written sync face without update_if

    manager = FileManager(shared.config, AsyncWithCas())
    assert manager.features.update_if and not manager.sync.features.update_if
    record = manager.sync.upload(b"s", UploadOptions(filename="s.txt"))
    moved = manager.sync.set_tier(record, SetTierOptions(StorageTier.COLD))
    assert moved.storage_tier == StorageTier.COLD and shared.read("COLD", moved.path) == b"s"


def test_a_subclass_of_a_derived_adapter_keeps_its_own_optional_methods(shared: Env) -> None:
    stored: dict[Any, int] = {}

    class Sized(InMemoryAdapter):
        async def create_stored(
            self, storage_tier: StorageTier, filename: str, path: str, hot_until: Any, stored_info: ObjectInfo
        ) -> PhysicalFile:
            record = await self.create(storage_tier, filename, path, hot_until)
            stored[record.id] = stored_info.size
            return record

    manager = FileManager(shared.config, Sized())
    assert manager.features.create_stored
    record = asyncio.run(manager.upload(b"12345", UploadOptions(filename="five.bin")))
    assert stored == {record.id: 5}


def test_a_declared_feature_without_its_method_is_refused_when_the_manager_is_built(shared: Env) -> None:
    class Boasting(InMemoryAdapter):
        pass

    class BoastingSync(UpstreamSync):
        features = AdapterFeatures(update_if=True)

    with pytest.raises(ConfigurationError, match="update_if"):
        features_of(BoastingSync())
    with pytest.raises(ConfigurationError, match="update_if"):
        FileManager(shared.config, SyncBackedAdapter(BoastingSync()))
    assert isinstance(Boasting(), StorageAdapter)


def test_chosen_keys_are_rechecked_against_every_record_without_a_path_lookup(shared: Env) -> None:
    manager = FileManager(shared.config, SyncBackedAdapter(UpstreamSync()))
    assert not manager.features.find_existing_paths
    live = manager.sync.upload(b"live", UploadOptions(filename="live.txt"))
    outcomes: list[Any] = []
    for action in ("adopt", "delete"):
        manager.sync.sweep_orphan_keys(OrphanPolicy(action, grace_period=0), "HOT", [live.path], outcomes.append)
    assert [o.action for o in outcomes] == ["skipped", "skipped"]
    assert len(manager.sync.list_files()) == 1 and shared.read("HOT", live.path) == b"live"


def test_chosen_keys_outside_the_policys_tier_or_prefix_are_refused(shared: Env) -> None:
    manager = FileManager(shared.config, InMemoryAdapter())
    shared.put("HOT", "public/keep-me.bin", b"k")
    outcomes: list[Any] = []
    narrow = OrphanPolicy("delete", grace_period=0, prefix="private/tmp/")
    manager.sync.sweep_orphan_keys(narrow, "HOT", ["public/keep-me.bin"], outcomes.append)
    elsewhere = OrphanPolicy("delete", grace_period=0, tier="COLD")
    manager.sync.sweep_orphan_keys(elsewhere, "HOT", ["public/keep-me.bin"], outcomes.append)
    assert [o.action for o in outcomes] == ["refused", "refused"]
    assert shared.read("HOT", "public/keep-me.bin") == b"k"


def test_the_loop_bridge_never_defers_work_to_a_commit() -> None:
    from django_s3strata.core import LoopBridgeAdapter

    class Transactional(InMemoryAdapter):
        async def run_after_commit(self, work: Any) -> bool:
            work()
            return True

    adapter = Transactional()
    assert adapter.features.run_after_commit
    assert not LoopBridgeAdapter(adapter).features.run_after_commit
