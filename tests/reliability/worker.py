"""One role of the concurrency test, in a process of its own: ``python -m tests.reliability.worker ROLE SECONDS``.

Roles: ``archive`` (archival runs until no file is expired), ``visibility`` (flips files between
public and private from four threads), ``sweep`` (orphan sweeps with a short grace period). Each
prints "ready", waits for a line on stdin so that all start together, works until the deadline
and prints a JSON summary.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor

GRACE = 3  # seconds: the sweep's grace period, far longer than a move's copy-to-commit window


def main() -> None:
    """Run the role named on the command line."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.db import connections

    from django_s3strata import get_file_manager, operations
    from django_s3strata.models import PhysicalFile

    role, seconds = sys.argv[1], float(sys.argv[2])
    get_file_manager().objectstore.client(operations.StorageTier.HOT)
    print("ready", flush=True)
    sys.stdin.readline()
    deadline = time.monotonic() + seconds
    out: dict[str, int] = {"moved": 0, "skipped": 0, "failed": 0, "flipped": 0, "deleted": 0}
    if role == "archive":
        while time.monotonic() < deadline and PhysicalFile.objects.expired().exists():
            summary = operations.archive_expired(batch_size=10, concurrency=4, lease_seconds=30)
            out["moved"] += summary.moved
            out["skipped"] += summary.skipped
            out["failed"] += summary.failed
    elif role == "visibility":
        ids = list(PhysicalFile.objects.values_list("pk", flat=True))

        def flip(seed: int) -> tuple[int, int]:
            rng, flipped, failed = random.Random(seed), 0, 0
            try:
                while time.monotonic() < deadline:
                    record = PhysicalFile.objects.get(pk=rng.choice(ids))
                    try:
                        record.set_visibility("PRIVATE" if record.visibility.value == "PUBLIC" else "PUBLIC")
                        flipped += 1
                    except Exception:
                        failed += 1
            finally:
                connections.close_all()
            return flipped, failed

        with ThreadPoolExecutor(4) as pool:
            for flipped, failed in pool.map(flip, range(4)):
                out["flipped"] += flipped
                out["failed"] += failed
    elif role == "sweep":
        while time.monotonic() < deadline:
            out["deleted"] += operations.sweep_orphans("delete", older_than=GRACE).deleted
            time.sleep(0.2)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
