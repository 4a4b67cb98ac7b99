"""Archival, adoption and orphan deletion through django_s3strata.operations, under every fault at every request."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connections

from django_s3strata import operations
from django_s3strata.adapters import DjangoORMAdapter
from django_s3strata.core import FileManager, UploadOptions
from django_s3strata.models import PhysicalFile
from tests.conftest import Env, make_env, settings_dict
from tests.faults import Faults
from tests.reliability.conftest import STALL, proxy_pair, through
from tests.reliability.matrix import Case, Where, World, assert_held, run_matrix
from tests.s3server import MotoS3Server

pytestmark = pytest.mark.django_db(transaction=True)
_current = threading.local()


def current_manager(name: str | None = None) -> FileManager:
    """Stand in for get_file_manager(name) inside operations: each lane's thread runs its own manager (one configuration)."""
    manager: FileManager = _current.fm
    return manager


class DjangoWorld(World):
    """Rows in the test database; operations run on a manager behind this world's proxies."""

    def __init__(self, env: Env, faults: Faults, fast: FileManager) -> None:
        super().__init__(env, faults)
        self.fast = fast
        self.calm_fm = FileManager(env.config, DjangoORMAdapter())

    @contextmanager
    def calm(self) -> Iterator[None]:
        _current.fm = self.calm_fm
        try:
            yield
        finally:
            _current.fm = self.fast

    def rows(self, mark: str) -> list[Where]:
        return list(PhysicalFile.objects.filter(path__contains=f"/{mark}/").order_by("id").values_list("storage_tier", "path"))

    def sweep(self, mark: str) -> None:
        for visibility in ("public", "private"):
            operations.sweep_orphans("delete", older_than=0, prefix=f"{visibility}/{mark}/")

    def problems(self, mark: str) -> list[str]:
        leased = PhysicalFile.objects.filter(path__contains=f"/{mark}/", lease_owner__isnull=False).count()
        return [f"{leased} row(s) still leased"] if leased else []

    def start_lane(self) -> None:
        _current.fm = self.fast

    def end_lane(self) -> None:
        connections.close_all()  # this lane's thread opened its own database connection


@pytest.fixture
def worlds(
    request: pytest.FixtureRequest,
    moto_server: MotoS3Server,
    moto_server_b: MotoS3Server,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[list[DjangoWorld]]:
    layout, lanes = request.param
    env = make_env(layout, moto_server, moto_server_b)
    settings.S3STRATA = {**settings_dict(env.config), "ADVANCED": {"ORPHAN_GRACE_PERIOD": 0}}
    monkeypatch.setattr(operations, "get_file_manager", current_manager)
    made, pairs = [], []
    for _ in range(lanes):
        faults = Faults(stall_seconds=STALL)
        pairs.append(proxy_pair(moto_server, moto_server_b, faults))
        made.append(DjangoWorld(env, faults, FileManager(through(env, pairs[-1], layout), DjangoORMAdapter())))
    _current.fm = made[0].fast
    yield made
    for pair in pairs:
        for proxy in pair:
            proxy.stop()


def archival(world: World, mark: str) -> Case:
    data = f"bytes of {mark}".encode()
    key = current_manager().sync.upload(data, UploadOptions(path_suffix=f"{mark}/f.bin", hot_duration=0)).path

    def act() -> bool:
        return operations.archive_expired(concurrency=1).moved == 1

    return Case(mark, data, ("HOT", key), ("COLD", key), act)


def adopt(world: World, mark: str) -> Case:
    data = f"bytes of {mark}".encode()
    key = f"private/{mark}/found.bin"
    world.env.put("HOT", key, data)

    def act() -> bool:
        # Complete when every orphan found was adopted (a re-run after a late failure finds none).
        summary = operations.sweep_orphans("adopt", older_than=0, prefix=f"private/{mark}/")
        return (summary.adopted, summary.failed) == (summary.found, 0)

    return Case(mark, data, None, ("HOT", key), act)


def orphan_delete(world: World, mark: str) -> Case:
    data = f"bytes of {mark}".encode()
    key = current_manager().sync.upload(data, UploadOptions(path_suffix=f"{mark}/kept.bin")).path
    world.env.put("HOT", f"private/{mark}/orphan.bin", b"no row points here")

    def act() -> bool:
        summary = operations.sweep_orphans("delete", older_than=0, prefix=f"private/{mark}/")
        return (summary.deleted, summary.failed) == (summary.found, 0)

    # The kept file's row is the same before and after; the orphan must go, the kept object must stay.
    return Case(mark, data, ("HOT", key), ("HOT", key), act)


OPERATIONS: dict[str, Callable[[World, str], Case]] = {"archival": archival, "adopt": adopt, "orphan-delete": orphan_delete}


@pytest.mark.parametrize(
    ("operation", "worlds"),
    [
        # Archival claims every expired row, so its cases run one at a time; the sweeps keep to their prefix.
        ("archival", ("shared", 1)),
        ("archival", ("separate", 1)),
        ("adopt", ("shared", 3)),
        ("orphan-delete", ("shared", 3)),
    ],
    indirect=["worlds"],
    ids=["archival-shared", "archival-separate", "adopt-shared", "orphan-delete-shared"],
)
def test_every_fault_at_every_step_keeps_the_promise(operation: str, worlds: list[DjangoWorld], request: Any) -> None:
    layout = request.node.callspec.params["worlds"][0]
    assert_held(run_matrix(operation, layout, worlds, OPERATIONS[operation]))  # type: ignore[arg-type]
