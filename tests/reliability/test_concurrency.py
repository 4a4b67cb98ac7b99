"""Four processes at once over the same files (archival twice, visibility flips, orphan sweeps): nothing is lost."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from django_s3strata import get_file_manager, operations
from django_s3strata.core import UploadOptions
from django_s3strata.models import PhysicalFile
from tests.conftest import Env
from tests.reliability.test_kills import listing

ROOT = Path(__file__).resolve().parents[2]
FILES = 100
SECONDS = 5.0


def start(role: str, settings: Any) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "S3STRATA_TEST_DB_NAME": connection.settings_dict["NAME"],
        "S3STRATA_TEST_SETTINGS": json.dumps(settings.S3STRATA),
    }
    cmd = [sys.executable, "-m", "tests.reliability.worker", role, str(SECONDS)]
    return subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )


def suffix(key: str) -> str:
    return key.split("/", 1)[1]


def wrong_rows(env: Env, md5: dict[str, str]) -> list[str]:
    """Return each row that does not point at an object holding its original bytes."""
    objects = {"HOT": listing(env, "HOT"), "COLD": listing(env, "COLD")}
    rows = PhysicalFile.objects.values_list("storage_tier", "path")
    return [f"{tier} {path}" for tier, path in rows if objects[tier].get(path) != md5[suffix(path)]]


# Without the conditional commit (update_if), a visibility change and an archival racing on one row
# left it at (COLD, public/...) while the copy went to (COLD, private/...): a row pointing at nothing.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("env", ["shared"], indirect=True)
def test_archival_visibility_and_sweeps_at_once_lose_nothing(s3strata_settings: Env, settings: Any) -> None:
    if connection.vendor not in ("postgresql", "mysql"):
        pytest.skip("the worker processes need a database server with row locks (PostgreSQL, MariaDB)")
    env = s3strata_settings
    sync = get_file_manager().sync
    data = {f"conc/{i:03d}-f.bin": f"file {i}".encode() for i in range(FILES)}
    for name, content in data.items():
        sync.upload(content, UploadOptions(path_suffix=name, hot_duration=0))
    md5 = {name: hashlib.md5(content, usedforsecurity=False).hexdigest() for name, content in data.items()}
    procs = [start(role, settings) for role in ("archive", "archive", "visibility", "sweep")]
    summaries = []
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            assert proc.stdout is not None
            summaries.append(json.loads(proc.stdout.readline()))
    finally:
        for proc in procs:
            proc.wait(60)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
    archivers, flips = summaries[:2], summaries[2]
    assert flips["flipped"] > 0 and sum(a["moved"] for a in archivers) > 0
    # Right after the storm, before any repair: every row points at its own bytes.
    assert wrong_rows(env, md5) == []
    leftovers = operations.archive_expired()
    operations.sweep_orphans("delete", older_than=0)
    assert sum(a["moved"] for a in archivers) + leftovers.moved == FILES  # each file archived once
    rows = dict(PhysicalFile.objects.values_list("path", "storage_tier"))
    assert len(rows) == FILES and set(rows.values()) == {"COLD"}
    assert listing(env, "HOT") == {}
    assert {suffix(k): v for k, v in listing(env, "COLD").items()} == md5 and set(listing(env, "COLD")) == set(rows)
    print(f"\nconcurrency: {summaries}")
