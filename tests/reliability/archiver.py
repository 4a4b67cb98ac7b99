"""Archival runs in processes the kill tests SIGKILL mid-run: ``python -m tests.reliability.archiver``.

The process sets Django up once, then forks one archiver per "go" line read from stdin and
prints ``ready <pid>`` from the child; a test kills that pid. Forking from a warm parent makes a
fresh archiver cost milliseconds instead of a second of imports.
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    """Fork an archiver per "go" on stdin; each prints "ready <pid>", archives, prints "done <pid> <moved> <failed>"."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.db import connections

    from django_s3strata import operations

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    lease = int(os.environ.get("S3STRATA_TEST_LEASE", "2"))
    for line in sys.stdin:
        if line.strip() != "go":
            break
        connections.close_all()  # a child must not share the parent's database socket
        if os.fork() == 0:
            print(f"ready {os.getpid()}", flush=True)
            summary = operations.archive_expired(batch_size=50, concurrency=4, lease_seconds=lease)
            print(f"done {os.getpid()} {summary.moved} {summary.failed}", flush=True)
            os._exit(0)


if __name__ == "__main__":
    main()
