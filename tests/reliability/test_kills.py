"""Archival killed with SIGKILL at random moments: every re-run keeps each row on its bytes, and the last converges."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from django_s3strata import operations
from django_s3strata.models import ObjectClaim, PhysicalFile
from tests.conftest import Env, seed_expired

ROOT = Path(__file__).resolve().parents[2]
FILES = 1000
KILLS = 10
LEASE = 2  # seconds: a killed archiver's claims expire this soon


def listing(env: Env, tier: str) -> dict[str, str]:
    """Return {key: ETag} of a whole bucket, read directly."""
    out: dict[str, str] = {}
    for page in env.client(tier).get_paginator("list_objects_v2").paginate(Bucket=env.bucket(tier)):
        out.update((o["Key"], o["ETag"].strip('"')) for o in page.get("Contents", []))
    return out


def dangling(env: Env, md5: dict[str, str]) -> list[str]:
    """Return the rows that do not point at an object holding their original bytes."""
    objects = {"HOT": listing(env, "HOT"), "COLD": listing(env, "COLD")}
    rows = PhysicalFile.objects.values_list("storage_tier", "path")
    return [f"{tier} {path}" for tier, path in rows if objects[tier].get(path) != md5[path]]


def next_line(stdout: Any, word: str) -> list[str]:
    """Return the archivers' next ``word`` line, past the "done" of a run that ended before its kill."""
    while True:
        parts = stdout.readline().split()
        if parts and parts[0] == word:
            return parts
        assert parts and parts[0] == "done", parts


def zygote(settings: Any) -> subprocess.Popen[str]:
    """Start the process that forks archivers on request (tests/reliability/archiver.py)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "S3STRATA_TEST_DB_NAME": connection.settings_dict["NAME"],
        "S3STRATA_TEST_SETTINGS": json.dumps(settings.S3STRATA),
        "S3STRATA_TEST_LEASE": str(LEASE),
    }
    cmd = [sys.executable, "-m", "tests.reliability.archiver"]
    return subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow  # 30 to 50 s: a thousand files archived once, in pieces, and listed after every kill
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("env", ["shared"], indirect=True)
def test_archival_killed_at_random_moments_converges(s3strata_settings: Env, settings: Any) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the archiver processes need a database they can share (PostgreSQL)")
    env = s3strata_settings
    # A killed archiver's claims on its files' keys expire as soon as its leases do.
    settings.S3STRATA = {**settings.S3STRATA, "ADVANCED": {"CLAIM_SECONDS": LEASE}}
    md5 = {k: hashlib.md5(v, usedforsecurity=False).hexdigest() for k, v in seed_expired(env, FILES, "kill").items()}
    rng = random.Random(8)
    killed_mid_run = 0
    parent = zygote(settings)
    assert parent.stdin is not None and parent.stdout is not None
    try:
        for _ in range(KILLS):
            parent.stdin.write("go\n")
            parent.stdin.flush()
            _, pid = next_line(parent.stdout, "ready")
            time.sleep(rng.uniform(0.2, 1.0))
            killed_mid_run += alive(int(pid))
            # A run that finished first is gone already (its parent reaped it): one such is allowed below.
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
            while alive(int(pid)):
                time.sleep(0.01)
            # At any moment, even right after a kill: no row points at nothing or at other bytes.
            assert dangling(env, md5) == []
        remaining = PhysicalFile.objects.filter(storage_tier="HOT").count()
        assert killed_mid_run >= KILLS - 1 and remaining > 0, "the kills must land mid-run"
        time.sleep(LEASE)  # the dead archivers' claims expire
        parent.stdin.write("go\n")  # the re-run, in a process of its own like the others
        parent.stdin.flush()
        _, rerun = next_line(parent.stdout, "ready")
        word, pid, _moved, failed = parent.stdout.readline().split()
        assert (word, pid, failed) == ("done", rerun, "0")
    finally:
        parent.stdin.close()
        parent.wait(30)
        parent.stdout.close()
    operations.sweep_orphans("delete", older_than=0)  # copies left by a kill between commit and delete
    rows = dict(PhysicalFile.objects.values_list("path", "storage_tier"))
    assert len(rows) == FILES and set(rows.values()) == {"COLD"}
    assert listing(env, "HOT") == {}
    assert listing(env, "COLD") == md5  # every file in COLD exactly once, with its bytes
    assert not PhysicalFile.objects.filter(lease_owner__isnull=False).exists()
    assert not ObjectClaim.objects.filter(until__gt=timezone.now()).exists()
    print(f"\nkills: {KILLS} SIGKILLs ({killed_mid_run} mid-run), {FILES - remaining} of {FILES} moved before the last run")
