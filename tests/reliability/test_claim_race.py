"""A claim released by its holder while another writer is claiming the same key (found by test_chaos.py).

Before the fix, the claiming writer found no holder left and took the key as its own with no
claim row behind it; a third writer then claimed the key too. The long randomized run lost files
that way: an orphan sweep checked that no row pointed at a key, a move committed a row to it
under a claim of its own, and the sweep deleted the object.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from django.db import connection

from django_s3strata import adapters, get_file_manager
from django_s3strata.core import UploadOptions
from django_s3strata.core.exceptions import ConflictError
from django_s3strata.core.types import StorageTier
from django_s3strata.models import ObjectClaim, PhysicalFile
from tests.conftest import Env

COLD = StorageTier.COLD


def release_after_next_claim(monkeypatch: pytest.MonkeyPatch, holder: str, key: tuple[StorageTier, str]) -> None:
    """Make ``holder`` release ``key`` right after the next other writer's claim statement (before it reads the holders)."""
    if connection.vendor == "mysql":
        pytest.skip("the hook sits in the single-statement claim of PostgreSQL and SQLite")
    upsert = adapters._upsert_claims
    fired = []

    def upsert_then_release(conn: Any, owner: str, *args: Any) -> set[str]:
        mine = upsert(conn, owner, *args)
        if owner != holder and not fired:
            fired.append(owner)
            adapters.release_keys(holder, [key])
        return mine

    monkeypatch.setattr(adapters, "_upsert_claims", upsert_then_release)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("env", ["shared"], indirect=True)
def test_a_key_released_while_claiming_is_not_taken_without_a_claim(s3strata_settings: Env, monkeypatch: Any) -> None:
    key = (COLD, "private/race/a.bin")
    assert adapters.claim_keys("writer-a", [key], 60) == {}
    release_after_next_claim(monkeypatch, "writer-a", key)
    held = adapters.claim_keys("writer-b", [key], 60)
    # Either B was told the key is taken, or B really holds it: never "yours" with no claim behind it.
    assert held or ObjectClaim.objects.filter(owner="writer-b").exists()
    if not held:
        assert adapters.claim_keys("writer-c", [key], 60) == {key: "writer-b"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("env", ["shared"], indirect=True)
def test_a_sweep_racing_a_released_claim_deletes_nothing_a_row_needs(
    s3strata_settings: Env, monkeypatch: Any, settings: Any
) -> None:
    settings.S3STRATA = {**settings.S3STRATA, "ADVANCED": {"CLAIM_WAIT": 0.2}}
    env = s3strata_settings
    sync = get_file_manager().sync
    record = PhysicalFile.objects.get(pk=sync.upload(b"keep me", UploadOptions(path_suffix="race/x.bin")).id)
    key = record.path  # HOT private/race/x.bin; the same key in COLD
    env.put("COLD", key, b"keep me")  # a stale copy in COLD: an orphan
    assert adapters.claim_keys("writer-a", [(COLD, key)], 60) == {}  # another writer holds it...
    release_after_next_claim(monkeypatch, "writer-a", (COLD, key))  # ...and finishes while the sweep claims it
    store = get_file_manager().objectstore
    delete = store.delete

    def a_move_first(tier: StorageTier, k: str) -> None:
        # Between the sweep's "no row points here" and its DeleteObject, a move commits the row to this key.
        if (tier, k) == (COLD, key) and record.storage_tier == "HOT":
            with contextlib.suppress(ConflictError):  # the sweep holds the key: the move must wait, and it did
                record.set_tier("COLD")
        delete(tier, k)

    monkeypatch.setattr(store, "delete", a_move_first)
    sync.delete_object(COLD, key)  # the orphan sweep's step for this key
    row = PhysicalFile.objects.get(pk=record.pk)
    assert env.read(row.storage_tier, row.path) == b"keep me"
