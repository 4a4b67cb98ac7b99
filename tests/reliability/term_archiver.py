"""Archivers the SIGTERM test stops mid-batch, forked from a warm parent: ``python -m tests.reliability.term_archiver``.

For each line ``go MODE POINT LOG`` on stdin the parent forks an archiver, waits for it and
prints ``exit <code>``. The archiver writes its log records (and anything the interpreter reports)
to LOG, prints ``ready <pid>``, archives the expired rows (batches of 10, 4 copies at a time) and,
the first time it reaches POINT, prints ``at POINT`` and waits there (up to 20 s) for the SIGTERM:

- ``copies``: in a copy thread, once 5 copies of the first batch are done;
- ``before-commit``: in the batch commit, before ``update_many_if`` runs;
- ``after-commit``: in the batch commit, after ``update_many_if`` committed (sources not yet deleted);
- ``deleting``: before the bulk delete of a committed batch's sources.

MODE ``default`` leaves SIGTERM's default action (the process dies at once); ``exit`` turns it into
SystemExit, as programs that shut down on SIGTERM do, so the archiver unwinds from where it was and
the interpreter exits normally (finalizers, atexit, thread pools).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any


def archive(mode: str, point: str) -> None:
    """Archive once in this (forked) process, pausing at ``point``."""
    from django_s3strata import operations
    from django_s3strata.adapters import DjangoORMSyncAdapter
    from django_s3strata.core.manager import SyncFileManager
    from django_s3strata.core.objectstore import ObjectStore

    resume = threading.Event()
    lock = threading.Lock()
    reached: set[str] = set()
    copies = 0

    def pause(where: str) -> None:
        with lock:
            if where != point or where in reached:
                return
            reached.add(where)
        print(f"at {where}", flush=True)
        resume.wait(20)

    def on_term(signum: int, frame: Any) -> None:
        logging.getLogger("s3strata.tests").warning("SIGTERM: stopping")
        resume.set()
        raise SystemExit(128 + signum)

    if mode == "exit":
        signal.signal(signal.SIGTERM, on_term)

    copy_for_archive = SyncFileManager.copy_for_archive

    def counted_copy(self: SyncFileManager, *args: Any, **kwargs: Any) -> Any:
        nonlocal copies
        result = copy_for_archive(self, *args, **kwargs)
        with lock:
            copies += 1
            done = copies
        if done == 5:
            pause("copies")
        return result

    update_many_if = DjangoORMSyncAdapter.update_many_if

    def paused_commit(self: DjangoORMSyncAdapter, moves: Any) -> Any:
        pause("before-commit")
        out = update_many_if(self, moves)
        pause("after-commit")
        return out

    delete_many = ObjectStore.delete_many

    def paused_delete_many(self: ObjectStore, *args: Any, **kwargs: Any) -> Any:
        pause("deleting")
        return delete_many(self, *args, **kwargs)

    SyncFileManager.copy_for_archive = counted_copy  # type: ignore[method-assign]
    DjangoORMSyncAdapter.update_many_if = paused_commit  # type: ignore[method-assign]
    ObjectStore.delete_many = paused_delete_many  # type: ignore[method-assign]
    lease = int(os.environ["S3STRATA_TEST_LEASE"])
    summary = operations.archive_expired(batch_size=10, concurrency=4, lease_seconds=lease)
    print(f"done {summary.moved} {summary.failed}", flush=True)


def main() -> None:
    """Fork an archiver per "go MODE POINT LOG" line; print "exit <code>" when it has ended."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.db import connections

    import django_s3strata.operations  # noqa: F401  (imported once, before any fork)

    for line in sys.stdin:
        words = line.split()
        if not words or words[0] != "go":
            break
        mode, point, log = words[1:]
        connections.close_all()  # a child must not share the parent's database socket
        pid = os.fork()
        if pid == 0:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 2)
            logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
            print(f"ready {os.getpid()}", flush=True)
            archive(mode, point)  # a SystemExit from SIGTERM ends this process through the interpreter's exit
            sys.exit(0)
        _, status = os.waitpid(pid, 0)
        print(f"exit {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    main()
