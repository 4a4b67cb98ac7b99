"""Retries through the fault proxy: transient errors are retried within the budget, permanent ones fail at once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from django_s3strata.core import (
    AccessDeniedError,
    BucketNotFoundError,
    FileManager,
    InMemoryAdapter,
    SetTierOptions,
    StorageError,
    UploadOptions,
)
from tests.conftest import Env, make_env
from tests.faults import FaultProxy, Faults
from tests.reliability.conftest import through
from tests.s3server import SECRET_KEY, MotoS3Server

Managers = Callable[..., tuple[FileManager, Env]]


@pytest.fixture(scope="module")
def managers(moto_server: MotoS3Server, proxies: tuple[FaultProxy, FaultProxy]) -> Managers:
    """Return a manager through the proxies for a given retry budget (built once: clients are slow to make)."""
    env = make_env("shared", moto_server, moto_server)
    made: dict[int, FileManager] = {}

    def get(max_attempts: int) -> tuple[FileManager, Env]:
        if max_attempts not in made:
            made[max_attempts] = FileManager(through(env, proxies, "shared", max_attempts=max_attempts), InMemoryAdapter())
        return made[max_attempts], env

    return get


@pytest.mark.parametrize("fault", ["slowdown", "500", "reset", "stall"])
def test_a_transient_fault_is_retried(fault: str, managers: Managers, faults: Faults) -> None:
    fm, env = managers(3)
    # SlowDown backs off for up to a second (botocore's throttling scale): one operation is enough for it.
    for op in ("PutObject",) if fault == "slowdown" else ("PutObject", "CopyObject", "HeadObject"):
        faults.reset()
        faults.fail(op, nth=1, fault=fault)
        f = fm.sync.upload(op.encode(), UploadOptions(path_suffix=f"{fault}/{op}.bin"))
        f = fm.sync.set_tier(f, SetTierOptions(tier="COLD"))
        assert env.read("COLD", f.path) == op.encode()
        assert fm.sync.exists(f)  # a HEAD (the move copied without reading the object first)
        assert [s.outcome for s in faults.log if s.op == op][:2] == [fault, "ok"]  # failed once, then retried


def test_the_retry_budget_is_honoured(managers: Managers, faults: Faults) -> None:
    fm, env = managers(3)
    faults.fail("PutObject", nth=1, fault="slowdown", times=10)
    with pytest.raises(StorageError) as info:
        fm.sync.upload(b"x", UploadOptions(path_suffix="budget.bin"))
    assert info.value.transient and info.value.code == "SlowDown" and info.value.operation == "PutObject"
    assert faults.count("PutObject") == 3  # max_attempts, the first try included
    assert "private/budget.bin" not in env.keys("HOT") and all(r.path != "private/budget.bin" for r in fm.adapter.files.values())  # type: ignore[attr-defined]


@pytest.mark.parametrize("fault", ["403", "badkey"])
def test_access_denied_fails_fast_with_a_clear_error(fault: str, managers: Managers, faults: Faults, caplog: Any) -> None:
    fm, env = managers(5)
    faults.fail("PutObject", nth=1, fault=fault, times=10)
    with caplog.at_level(logging.DEBUG, logger="django_s3strata"), pytest.raises(AccessDeniedError) as info:
        fm.sync.upload(b"x", UploadOptions(path_suffix=f"denied-{fault}.bin"))
    err = info.value
    assert faults.count("PutObject") == 1  # not retried
    assert not err.transient and err.operation == "PutObject" and err.key == f"private/denied-{fault}.bin"
    assert "Check the HOT tier's access_key and secret_key" in str(err)
    assert SECRET_KEY not in str(err) + repr(err) + caplog.text + repr(fm.config) + repr(fm.objectstore.tier(err_tier(err)))
    assert f"private/denied-{fault}.bin" not in env.keys("HOT")


def err_tier(err: StorageError) -> Any:
    from django_s3strata.core import StorageTier

    return StorageTier(err.tier)


def test_a_missing_bucket_fails_fast(moto_server: MotoS3Server, proxies: tuple[FaultProxy, FaultProxy], faults: Faults) -> None:
    env = Env(None, "no-such-bucket-anywhere", "no-such-cold", None, None)  # type: ignore[arg-type]
    fm = FileManager(through(env, proxies, "shared", max_attempts=5), InMemoryAdapter())
    with pytest.raises(BucketNotFoundError, match="create it, or fix the HOT bucket setting"):
        fm.sync.upload(b"x", UploadOptions(path_suffix="k.bin"))
    assert faults.count("PutObject") == 1 and fm.adapter.files == {}
