"""Random writers in several threads of two processes, with S3 faults, over 8 shared files: nothing is lost.

Each worker process (tests/reliability/chaos.py) runs ``set_tier``, ``set_visibility``,
archival, deletes (with re-uploads) and orphan sweeps (adopt, delete) with no grace period from
several threads, while its ObjectStore fails at random, before or after S3 acts. After every
operation it checks the rows it sees; here, after the workers stop, every row must point at its
own bytes, one orphan sweep must leave no orphan, and every acknowledged file that nobody tried to
delete must still have a row.

Environment: ``S3STRATA_CHAOS_SEED`` (else a fresh one, printed), ``S3STRATA_CHAOS_SECONDS``
(operations per layout, 12 s by default) or ``S3STRATA_CHAOS_OPS`` (at least that many operations
in all, instead of a duration), ``S3STRATA_CHAOS_PROCESSES`` (2), ``S3STRATA_CHAOS_THREADS`` (4
per process), ``S3STRATA_CHAOS_FAULT_RATE`` (0.04: the chance of a fault before a call, and again
after it). The long run of docs/reliability.md::

    S3STRATA_TEST_DB=postgresql S3STRATA_CHAOS_OPS=20000 .venv/bin/pytest tests/reliability/test_chaos.py -s -k shared
"""

from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from django_s3strata import get_file_manager, operations
from django_s3strata.core import UploadOptions
from django_s3strata.core.keys import split_key
from django_s3strata.core.types import FileVisibility, StorageTier
from django_s3strata.models import ObjectClaim, PhysicalFile
from tests.conftest import Env
from tests.reliability.chaos import content, interleavings

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "reliability"
FILES = 8


def knob(name: str, default: float) -> float:
    value = os.environ.get(f"S3STRATA_CHAOS_{name}")
    return float(value) if value else default


def start(plan: dict[str, Any], settings: Any, log: Any) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "S3STRATA_TEST_DB_NAME": connection.settings_dict["NAME"],
        "S3STRATA_TEST_SETTINGS": json.dumps(settings.S3STRATA),
    }
    cmd = [sys.executable, "-m", "tests.reliability.chaos", json.dumps(plan)]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)


def wrong_rows(env: Env) -> list[str]:
    """Return each row that does not point at an object holding its own file's bytes (read in full)."""
    store = get_file_manager().objectstore
    out = []
    for pk, tier, path in PhysicalFile.objects.values_list("pk", "storage_tier", "path"):
        suffix = split_key(store.tier(StorageTier(tier)), path)[1]
        try:
            got = env.read(tier, path)
        except env.client(tier).exceptions.NoSuchKey:
            out.append(f"row {pk} at {tier} {path}: no such object")
            continue
        if got != content(suffix):
            out.append(f"row {pk} at {tier} {path}: holds {got[:60]!r}")
    return out


def suffixes() -> set[str]:
    store = get_file_manager().objectstore
    rows = PhysicalFile.objects.values_list("storage_tier", "path")
    return {split_key(store.tier(StorageTier(tier)), path)[1] for tier, path in rows}


@pytest.fixture
def quiet_s3_server() -> Iterator[None]:
    """Keep the S3 server's line per request out of the captured log (a long run makes hundreds of thousands)."""
    log = logging.getLogger("werkzeug")
    level = log.level
    log.setLevel(logging.WARNING)
    yield
    log.setLevel(level)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("quiet_s3_server")
def test_random_writers_with_faults_lose_nothing(
    s3strata_settings: Env, settings: Any, request: pytest.FixtureRequest, record_property: Any
) -> None:
    env = s3strata_settings
    layout = request.node.callspec.params["env"]
    seed = int(os.environ.get("S3STRATA_CHAOS_SEED") or random.SystemRandom().randrange(10**9))
    processes, threads = int(knob("PROCESSES", 2)), int(knob("THREADS", 4))
    total_ops = int(knob("OPS", 0))
    seconds = None if total_ops else knob("SECONDS", 12)
    per_thread = math.ceil(total_ops / (processes * threads)) if total_ops else None
    # A writer waits at most 1 s for another's claim (10 s by default): more conflicts, less idling.
    settings.S3STRATA = {**settings.S3STRATA, "ADVANCED": {"CLAIM_WAIT": 1.0}}
    rng = random.Random(seed)
    sync = get_file_manager().sync
    acknowledged = []
    for i in range(FILES):
        suffix = f"chaos/setup-{i}.bin"
        tier, visibility = rng.choice(list(StorageTier)), rng.choice(list(FileVisibility))
        sync.upload(content(suffix), UploadOptions(tier=tier, visibility=visibility, path_suffix=suffix))
        acknowledged.append(suffix)
    database = os.environ.get("S3STRATA_TEST_DB") or connection.vendor
    where = f"seed {seed}, {layout}, {database}"

    with tempfile.TemporaryDirectory(prefix="s3strata-chaos-") as tmp:
        plans = [
            {
                "index": i,
                "seed": seed,
                "threads": threads,
                "seconds": seconds,
                "ops": per_thread,
                "fault_rate": knob("FAULT_RATE", 0.04),
                "population": FILES,
                "out": os.path.join(tmp, f"chaos-{i}.json"),
            }
            for i in range(processes)
        ]
        # The workers' logs (each injected fault makes the library log a warning) are kept apart.
        logs = [open(os.path.join(tmp, f"chaos-{i}.log"), "w") for i in range(processes)]  # noqa: SIM115
        procs = [start(plan, settings, log) for plan, log in zip(plans, logs, strict=True)]
        started = time.monotonic()
        try:
            for proc in procs:
                assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            started = time.monotonic()
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            for proc in procs:
                assert proc.stdout is not None
                assert proc.stdout.readline().strip() == "done", f"a worker died ({where})"
        finally:
            for proc, log in zip(procs, logs, strict=True):
                proc.wait(120)
                log.close()
                for stream in (proc.stdin, proc.stdout):
                    if stream is not None:
                        stream.close()
        elapsed = time.monotonic() - started
        reports = [json.loads(pathlib.Path(plan["out"]).read_text()) for plan in plans]

    tally: dict[str, int] = {}
    faults = checks = 0
    for report in reports:
        checks += report["checks"]
        for name, n in report["tally"].items():
            tally[name] = tally.get(name, 0) + n
        faults += sum(report["faults"].values())
    overlaps = interleavings([span for report in reports for span in report["spans"]])
    violations = [v for report in reports for v in report["violations"]]
    errors = [e for report in reports for e in report["errors"]]
    uploaded = [s for report in reports for s in report["uploaded"]]
    delete_tried = {s for report in reports for s in report["delete_tried"]}

    # Right after the storm, before any sweep: every row points at its own bytes.
    wrong_after_storm = wrong_rows(env)
    # The workers have exited: a claim still in the table is a dead writer's and would only
    # expire after claim_seconds (900 s). Deleting them is what their expiry would do.
    claims_left, _ = ObjectClaim.objects.all().delete()
    cleanup = operations.sweep_orphans("delete", older_than=0)
    report_sweep = operations.sweep_orphans("report", older_than=0)
    wrong_at_end = wrong_rows(env)
    lost = sorted(set(acknowledged + uploaded) - delete_tried - suffixes())

    summary = (
        f"chaos ({where}): {tally.get('ops', 0)} operations in {elapsed:.1f} s by {processes}x{threads} threads, "
        f"{checks} checks, {tally.get('conflict', 0)} ConflictErrors, {faults} faults injected "
        f"({tally.get('fault', 0)} operations failed by them), {overlaps['interleavings']} interleavings "
        f"({overlaps['cross_process']} across processes, {overlaps['with_sweeps']} more with sweeps), "
        f"{tally.get('uploads', 0)} re-uploads, {tally.get('adopted', 0)} adopted, "
        f"{tally.get('orphans_deleted', 0)} orphans deleted, {tally.get('archived', 0)} archived in batches; "
        f"end: {claims_left} claims left, {cleanup.deleted} orphans swept, {report_sweep.found} after, "
        f"{PhysicalFile.objects.count()} rows"
    )
    print(f"\n{summary}")
    record_property("chaos", summary)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    artifact = {"summary": summary, "seed": seed, "tally": tally, "faults": faults, **overlaps, "errors": errors}
    (ARTIFACTS / f"chaos-{layout}-{database}.json").write_text(json.dumps(artifact, indent=1))

    bad_rows = sorted({v.split(": ", 2)[1].split(" at ")[0] for v in violations})
    assert violations == [], f"{where}: {len(bad_rows)} rows pointed at nothing or at other bytes: {violations[:5]}"
    assert errors == [], f"{where}: operations failed for reasons other than a conflict or a fault"
    assert wrong_after_storm == [], where
    assert cleanup.failed == 0 and report_sweep.found == 0, where
    assert wrong_at_end == [], where
    assert lost == [], f"{where}: acknowledged files nobody deleted have no row"
    # The run did what it is for: operations, faults, and operations overlapping on one file or with a sweep.
    assert tally.get("ops", 0) > 0 and faults > 0 and overlaps["interleavings"] + overlaps["with_sweeps"] > 0, where
