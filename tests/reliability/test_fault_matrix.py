"""The core's operations under every fault at every request: the record always points at the original bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from django_s3strata.core import (
    DeleteOrphanOptions,
    FileManager,
    InMemoryAdapter,
    PhysicalFile,
    SetTierOptions,
    SetVisibilityOptions,
    StorageTier,
    UploadOptions,
)
from tests.conftest import Env, make_env
from tests.faults import Faults
from tests.reliability.conftest import STALL, proxy_pair, through
from tests.reliability.matrix import Case, Where, World, assert_held, record_of, run_matrix
from tests.s3server import MotoS3Server


class CoreWorld(World):
    """A FileManager through the fault proxies, records in an InMemoryAdapter."""

    def __init__(self, env: Env, faults: Faults, fm: FileManager) -> None:
        super().__init__(env, faults)
        self.fm = self.fast = fm
        self.calm_fm = FileManager(env.config, fm.adapter)  # the same records, straight to the servers

    @contextmanager
    def calm(self) -> Iterator[None]:
        self.fm = self.calm_fm
        try:
            yield
        finally:
            self.fm = self.fast

    def rows(self, mark: str) -> list[Where]:
        return [(StorageTier(r.storage_tier).value, r.path) for r in self.fm.sync.list_files() if f"/{mark}/" in r.path]

    def record(self, mark: str) -> PhysicalFile:
        return record_of(self.fm.sync.list_files(), mark)

    def sweep(self, mark: str) -> None:
        for visibility in ("public", "private"):
            self.fm.sync.delete_orphan_objects(DeleteOrphanOptions(grace_period=0, prefix=f"{visibility}/{mark}/"))


#: Cases run on this many worlds at once: a stalled answer is mostly waiting.
LANES = 3


def make_worlds(layout: str, moto_server: MotoS3Server, moto_server_b: MotoS3Server) -> Iterator[list[CoreWorld]]:
    """One bucket pair for the whole matrix, and LANES managers each behind proxies of its own."""
    env = make_env(layout, moto_server, moto_server_b)
    made: list[CoreWorld] = []
    pairs = []
    for _ in range(LANES):
        faults = Faults(stall_seconds=STALL)
        pairs.append(proxy_pair(moto_server, moto_server_b, faults))
        made.append(CoreWorld(env, faults, FileManager(through(env, pairs[-1], layout), InMemoryAdapter())))
    yield made
    for pair in pairs:
        for proxy in pair:
            proxy.stop()


@pytest.fixture(scope="module")
def shared_worlds(moto_server: MotoS3Server, moto_server_b: MotoS3Server) -> Iterator[list[CoreWorld]]:
    yield from make_worlds("shared", moto_server, moto_server_b)


@pytest.fixture(scope="module")
def separate_worlds(moto_server: MotoS3Server, moto_server_b: MotoS3Server) -> Iterator[list[CoreWorld]]:
    yield from make_worlds("separate", moto_server, moto_server_b)


def stored(world: CoreWorld, mark: str, tier: str = "HOT", visibility: str = "PRIVATE") -> tuple[bytes, str]:
    """Upload the case's file (faults disarmed) and return its bytes and key."""
    data = f"bytes of {mark}".encode()
    f = world.fm.sync.upload(data, UploadOptions(tier=tier, visibility=visibility, path_suffix=f"{mark}/f.bin"))
    return data, f.path


def upload(world: CoreWorld, mark: str) -> Case:
    data = f"bytes of {mark}".encode()
    key = f"private/{mark}/f.bin"

    def act() -> bool:
        world.fm.sync.upload(data, UploadOptions(path_suffix=f"{mark}/f.bin"))
        return True

    return Case(mark, data, None, ("HOT", key), act)


def set_tier(source: str, target: str) -> Callable[[CoreWorld, str], Case]:
    def prepare(world: CoreWorld, mark: str) -> Case:
        data, key = stored(world, mark, tier=source)

        def act() -> bool:
            return world.fm.sync.set_tier(world.record(mark), SetTierOptions(tier=target, hot_duration=3600)).path == key

        return Case(mark, data, (source, key), (target, key), act)

    return prepare


def set_visibility(source: str, target: str) -> Callable[[CoreWorld, str], Case]:
    def prepare(world: CoreWorld, mark: str) -> Case:
        data, key = stored(world, mark, visibility=source)
        new_key = f"{target.lower()}/{key.split('/', 1)[1]}"

        def act() -> bool:
            return world.fm.sync.set_visibility(world.record(mark), SetVisibilityOptions(visibility=target)).path == new_key

        return Case(mark, data, ("HOT", key), ("HOT", new_key), act)

    return prepare


def delete(world: CoreWorld, mark: str) -> Case:
    data, key = stored(world, mark)

    def act() -> bool:
        record = [r for r in world.fm.sync.list_files() if f"/{mark}/" in r.path]
        if record:
            world.fm.sync.delete(record[0])
        return True

    return Case(mark, data, ("HOT", key), None, act)


OPERATIONS: dict[str, tuple[Callable[[CoreWorld, str], Case], tuple[str, ...]]] = {
    # Layout matters only where a request crosses tiers: a copy between buckets is server-side on one
    # endpoint and streamed across two. Everything else runs on the shared endpoint only.
    "upload": (upload, ("shared",)),
    "set_tier-to-COLD": (set_tier("HOT", "COLD"), ("shared", "separate")),
    "set_tier-to-HOT": (set_tier("COLD", "HOT"), ("shared", "separate")),
    "set_visibility-to-PUBLIC": (set_visibility("PRIVATE", "PUBLIC"), ("shared",)),
    "set_visibility-to-PRIVATE": (set_visibility("PUBLIC", "PRIVATE"), ("shared",)),
    "delete": (delete, ("shared",)),
}


@pytest.mark.parametrize("operation", [op for op, (_, layouts) in OPERATIONS.items() if "shared" in layouts])
def test_every_fault_at_every_step_on_one_endpoint(operation: str, shared_worlds: list[CoreWorld]) -> None:
    assert_held(run_matrix(operation, "shared", shared_worlds, OPERATIONS[operation][0]))  # type: ignore[arg-type]


@pytest.mark.parametrize("operation", [op for op, (_, layouts) in OPERATIONS.items() if "separate" in layouts])
def test_every_fault_at_every_step_across_endpoints(operation: str, separate_worlds: list[CoreWorld]) -> None:
    assert_held(run_matrix(operation, "separate", separate_worlds, OPERATIONS[operation][0]))  # type: ignore[arg-type]
