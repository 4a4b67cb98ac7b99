"""An archival worker SIGTERMed mid-batch: rows keep their bytes, a new run converges, one sweep clears the orphans."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from django_s3strata import operations
from django_s3strata.models import PhysicalFile
from tests.conftest import Env, seed_expired
from tests.reliability.test_kills import dangling, listing

ROOT = Path(__file__).resolve().parents[2]
FILES = 30  # three batches of 10 per scenario
LIFE = 1  # seconds: the claims' and the leases' life, so that the new run need not wait long
#: What the interpreter writes when an error could not be raised (an unclosed generator, a lost task's error).
UNRAISABLE = ("Exception ignored", "ignored GeneratorExit", "never retrieved", "was destroyed but it is pending")


def zygote(settings: Any) -> subprocess.Popen[str]:
    """Start the process that forks the archivers (tests/reliability/term_archiver.py)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "S3STRATA_TEST_DB_NAME": connection.settings_dict["NAME"],
        "S3STRATA_TEST_SETTINGS": json.dumps(settings.S3STRATA),
        "S3STRATA_TEST_LEASE": str(LIFE),
    }
    cmd = [sys.executable, "-m", "tests.reliability.term_archiver"]
    return subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )


SCENARIOS = [(mode, point) for mode in ("default", "exit") for point in ("copies", "before-commit", "after-commit", "deleting")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("env", ["shared"], indirect=True)
def test_sigterm_mid_batch_then_a_new_run_converges(s3strata_settings: Env, settings: Any, tmp_path: Path) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the archiver processes need a database they can share (PostgreSQL)")
    env = s3strata_settings
    settings.S3STRATA = {**settings.S3STRATA, "ADVANCED": {"CLAIM_SECONDS": LIFE}}
    md5: dict[str, str] = {}
    parent = zygote(settings)
    assert parent.stdin is not None and parent.stdout is not None
    try:
        for mode, point in SCENARIOS:
            md5.update(
                (k, hashlib.md5(v, usedforsecurity=False).hexdigest())
                for k, v in seed_expired(env, FILES, f"term-{mode}-{point}").items()
            )
            log = tmp_path / f"{mode}-{point}.log"
            parent.stdin.write(f"go {mode} {point} {log}\n")
            parent.stdin.flush()
            word, pid = parent.stdout.readline().split()
            assert word == "ready"
            assert parent.stdout.readline().strip() == f"at {point}", log.read_text()
            os.kill(int(pid), signal.SIGTERM)
            lines = [parent.stdout.readline().strip()]
            while not lines[-1].startswith("exit"):
                lines.append(parent.stdout.readline().strip())
            converge(env, md5, mode, point, lines, log.read_text())
    finally:
        parent.stdin.close()
        parent.wait(30)
        parent.stdout.close()


def converge(env: Env, md5: dict[str, str], mode: str, point: str, lines: list[str], text: str) -> None:
    """Check one stopped archiver's leftovers, run archival again, sweep once, and check that all is in place."""
    assert lines == [f"exit {-signal.SIGTERM if mode == 'default' else 128 + signal.SIGTERM}"], (lines, text)
    assert [line for line in text.splitlines() if any(u in line for u in UNRAISABLE)] == [], text
    assert "Traceback" not in text, text
    if mode == "exit":
        assert "SIGTERM: stopping" in text, text

    # Right after the kill: every row points at an object holding its original bytes.
    assert dangling(env, md5) == []
    hot = PhysicalFile.objects.filter(storage_tier="HOT").count()
    if point in ("after-commit", "deleting"):
        assert hot == FILES - 10, "the first batch's commit was made before the SIGTERM"
    else:
        assert hot == FILES

    # Once the stopped worker's claims and leases expire, a new run moves each remaining file once.
    time.sleep(LIFE + 0.2)
    summary = operations.archive_expired(batch_size=10, concurrency=4)
    assert (summary.moved, summary.skipped, summary.failed) == (hot, 0, 0), summary.failures
    assert dangling(env, md5) == []

    # One sweep removes what the stopped worker left: sources of committed moves, uncommitted copies.
    left = {
        tier: {k for k in listing(env, tier) if not PhysicalFile.objects.filter(storage_tier=tier, path=k).exists()}
        for tier in ("HOT", "COLD")
    }
    swept = operations.sweep_orphans("delete", older_than=0)
    orphans = len(left["HOT"]) + len(left["COLD"])
    assert (swept.found, swept.deleted, swept.failed) == (orphans, orphans, 0)
    assert listing(env, "HOT") == {}
    assert listing(env, "COLD") == md5  # every file in COLD exactly once, with its bytes
    assert set(PhysicalFile.objects.values_list("storage_tier", flat=True)) == {"COLD"}
    assert not PhysicalFile.objects.filter(lease_owner__isnull=False).exists()
    print(
        f"\nsigterm [{mode}] at {point}: {FILES - hot} of {FILES} committed before it, {summary.moved} moved by the "
        f"new run, {orphans} orphan(s) swept; its log: {len(text.splitlines())} line(s), no unraisable error"
    )
