"""The core's operations under every fault at every request: the record always points at the original bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

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
from tests.reliability.matrix import Case, Race, Where, World, assert_held, record_of, run_matrix, run_races
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


def make_worlds(
    layout: str, moto_server: MotoS3Server, moto_server_b: MotoS3Server, **advanced: Any
) -> Iterator[list[CoreWorld]]:
    """One bucket pair for the whole matrix, and LANES managers each behind proxies of its own."""
    env = make_env(layout, moto_server, moto_server_b, **advanced)
    made: list[CoreWorld] = []
    pairs = []
    for _ in range(LANES):
        faults = Faults(stall_seconds=STALL)
        pairs.append(proxy_pair(moto_server, moto_server_b, faults))
        made.append(CoreWorld(env, faults, FileManager(through(env, pairs[-1], layout, **advanced), InMemoryAdapter())))
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


# -- large objects: multipart uploads and copies in parts, each request faulted ------------------

MIB = 1024 * 1024
#: Uploads above 5 MiB go in 5 MiB parts: a 6 MiB file is CreateMultipartUpload, two UploadParts, Complete.
LARGE = {"multipart_threshold": 5 * MIB, "multipart_chunksize": 5 * MIB, "part_copy_threshold": 5 * MIB}


@pytest.fixture(scope="module")
def large_worlds(moto_server: MotoS3Server, moto_server_b: MotoS3Server) -> Iterator[list[CoreWorld]]:
    yield from make_worlds("shared", moto_server, moto_server_b, **LARGE)


def large_bytes(mark: str) -> bytes:
    """6 MiB that differ from one case to the next (a part of another case's file would show)."""
    unit = f"{mark}|".encode()
    return (unit * (6 * MIB // len(unit) + 1))[: 6 * MIB]


def upload_large(world: CoreWorld, mark: str) -> Case:
    data = large_bytes(mark)

    def act() -> bool:
        world.fm.sync.upload(data, UploadOptions(path_suffix=f"{mark}/f.bin"))
        return True

    return Case(mark, data, None, ("HOT", f"private/{mark}/f.bin"), act)


def set_tier_in_parts(world: CoreWorld, mark: str) -> Case:
    """A 6 MiB file moved to COLD on one endpoint: a copy in parts (UploadPartCopy) once the threshold is 5 MiB."""
    data = large_bytes(mark)
    key = world.fm.sync.upload(data, UploadOptions(path_suffix=f"{mark}/f.bin")).path

    def act() -> bool:
        return world.fm.sync.set_tier(world.record(mark), SetTierOptions(tier="COLD")).path == key

    return Case(mark, data, ("HOT", key), ("COLD", key), act)


@pytest.mark.parametrize("operation", ["upload-multipart", "set_tier-to-COLD-in-parts"])
def test_every_fault_at_every_request_of_a_large_object(
    operation: str, large_worlds: list[CoreWorld], monkeypatch: pytest.MonkeyPatch
) -> None:
    prepare = upload_large if operation == "upload-multipart" else set_tier_in_parts
    for world in large_worlds:
        # In-memory records know no ETag: the object is read first and copied in parts, as one above the
        # 5 GiB a single CopyObject takes would be (else one CopyObject, without reading it first).
        monkeypatch.setattr(world.fm.objectstore, "copy_unread", lambda *args: None)
    tally = run_matrix(operation, "shared", large_worlds, prepare)  # type: ignore[arg-type]
    parts = "UploadPart" if operation == "upload-multipart" else "UploadPartCopy"
    assert tally.steps.count(parts) == 2, tally.steps
    assert_held(tally)


# -- two writers: B run by the proxy before or after each of A's requests -----------------------

#: B waits this long for A's claims (A holds them for the whole case: B gives up, as it should).
RACE = {"claim_wait": 0.3}


@pytest.fixture(scope="module")
def race_worlds(moto_server: MotoS3Server, moto_server_b: MotoS3Server) -> Iterator[list[CoreWorld]]:
    yield from make_worlds("shared", moto_server, moto_server_b, **RACE)


def move_vs_stale_source_delete(world: CoreWorld, mark: str) -> Race:
    """A moves a COLD file back to HOT, onto a stale HOT copy a former move left; B deletes that stale copy."""
    data, key = stored(world, mark, tier="COLD")
    world.env.put("HOT", key, data)
    calm = world.calm_fm.sync

    def act() -> object:
        return world.fm.sync.set_tier(world.record(mark), SetTierOptions(tier="HOT"))

    return Race(mark, data, [("HOT", key), ("COLD", key)], act, lambda: calm.delete_object("HOT", key))


def stale_source_delete_vs_move(world: CoreWorld, mark: str) -> Race:
    """A deletes the stale HOT copy of a COLD file; B moves the file back to HOT meanwhile."""
    data, key = stored(world, mark, tier="COLD")
    world.env.put("HOT", key, data)
    calm = world.calm_fm.sync

    def act() -> object:
        return world.fm.sync.delete_object("HOT", key)

    def other() -> object:
        return calm.set_tier(record_of(calm.list_files(), mark), SetTierOptions(tier="HOT"))

    return Race(mark, data, [("HOT", key), ("COLD", key)], act, other)


def failed_copy_cleanup_vs_mover(world: CoreWorld, mark: str) -> Race:
    """A's copy to COLD stalls (the server copies, A times out and removes its copy); B moves the file to COLD too."""
    data, key = stored(world, mark)
    calm = world.calm_fm.sync

    def act() -> object:
        return world.fm.sync.set_tier(world.record(mark), SetTierOptions(tier="COLD"))

    def other() -> object:
        return calm.set_tier(record_of(calm.list_files(), mark), SetTierOptions(tier="COLD"))

    def arm(faults: Faults) -> None:
        faults.fail("CopyObject", 1, "stall")

    return Race(mark, data, [("HOT", key), ("COLD", key)], act, other, arm)


def delete_vs_move(world: CoreWorld, mark: str) -> Race:
    """A deletes the file; B moves it to COLD meanwhile (if B still finds its record)."""
    data, key = stored(world, mark)
    calm = world.calm_fm.sync

    def act() -> object:
        return world.fm.sync.delete(world.record(mark))

    def other() -> object:
        records = [r for r in calm.list_files() if f"/{mark}/" in r.path]
        return calm.set_tier(records[0], SetTierOptions(tier="COLD")) if records else None

    return Race(mark, data, [None, ("HOT", key), ("COLD", key)], act, other)


def move_vs_delete(world: CoreWorld, mark: str) -> Race:
    """A moves the file to COLD; B deletes it meanwhile."""
    data, key = stored(world, mark)
    calm = world.calm_fm.sync

    def act() -> object:
        return world.fm.sync.set_tier(world.record(mark), SetTierOptions(tier="COLD"))

    def other() -> object:
        records = [r for r in calm.list_files() if f"/{mark}/" in r.path]
        return calm.delete(records[0]) if records else None

    return Race(mark, data, [None, ("HOT", key), ("COLD", key)], act, other)


PAIRS: dict[str, Callable[[CoreWorld, str], Race]] = {
    "move-vs-stale-source-delete": move_vs_stale_source_delete,
    "stale-source-delete-vs-move": stale_source_delete_vs_move,
    "failed-copy-cleanup-vs-mover": failed_copy_cleanup_vs_mover,
    "delete-vs-move": delete_vs_move,
    "move-vs-delete": move_vs_delete,
}


@pytest.mark.parametrize("race", list(PAIRS))
def test_another_writer_at_every_request(race: str, race_worlds: list[CoreWorld]) -> None:
    tally = run_races(race, "shared", race_worlds, PAIRS[race])  # type: ignore[arg-type]
    assert_held(tally)
