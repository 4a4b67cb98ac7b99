"""Random writers over shared files with S3 faults, in a process of its own: ``python -m tests.reliability.chaos PLAN``.

``PLAN`` is JSON: ``index`` (this process's number), ``seed``, ``threads``, ``seconds`` (a
deadline) or ``ops`` (operations per thread), ``fault_rate``, ``population`` and ``out`` (where
the report goes). Each thread picks operations from a ``random.Random`` seeded from (seed,
index, thread): ``set_tier`` and ``set_visibility`` (to the other tier or visibility), archival
(``archive()``, or ``hot_until`` now and ``operations.archive_expired``; a COLD file is moved to
HOT first), ``delete`` (followed by an upload of a new file while the table holds fewer than
``population`` rows), orphan sweeps (adopt, delete) with no grace period, and
``verify_files(repair=True)``. The choices are reproducible from the seed; the interleavings are not.

Every ObjectStore call that writes or reads an object (``put``, ``copy``, ``delete``,
``delete_many``, ``head``, ``require``) fails at random with a transient StorageError, either
before the call (S3 did nothing) or after it (S3 acted and the answer was lost). After each
operation the thread waits for a check of every row it can see against the buckets, read without
faults (one checking thread serves all the threads of the process: see ``Rounds``).

The process prints "ready", waits for a line on stdin so that all start together, works, writes
its report (tallies, violations, each operation's file and time span) to ``out`` and prints "done".
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

#: Each operation and its weight.
OPERATIONS = {
    "set_tier": 30,
    "set_visibility": 25,
    "archive": 15,
    "delete": 10,
    "sweep_adopt": 5,
    "sweep_delete": 5,
    "verify_repair": 5,
}
#: The ObjectStore methods that fail at random.
FAULTY = ("put", "copy", "delete", "delete_many", "head", "require")


def content(suffix: str) -> bytes:
    """Return the bytes of the file whose key ends in ``suffix``: they name it, so a mix-up shows."""
    return f"s3strata chaos file {suffix}\n".encode() * (1 + len(suffix) % 5)


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class FaultInjector:
    """Replace an ObjectStore's methods on the instance with ones that fail at random (seeded per thread)."""

    def __init__(self, store: Any, seed: str, rate: float) -> None:
        self.store = store
        self.seed = seed
        self.rate = rate
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._local = threading.local()
        for name in FAULTY:
            setattr(store, name, self._wrap(name, getattr(store, name)))

    def _rng(self) -> random.Random:
        rng: random.Random | None = getattr(self._local, "rng", None)
        if rng is None:
            rng = self._local.rng = random.Random(f"{self.seed}:faults:{threading.current_thread().name}")
        return rng

    def _fault(self, name: str, when: str, args: tuple[Any, ...]) -> Exception:
        from django_s3strata.core.exceptions import StorageError

        with self._lock:
            self.counts[f"{name}:{when}"] += 1
        tier = args[0] if args else None
        bucket = self.store.tier(tier).bucket if tier is not None else None
        key = args[1] if len(args) > 1 and isinstance(args[1], str) else None
        return StorageError(
            f"injected fault ({when} the call)",
            operation=name,
            tier=getattr(tier, "value", None),
            bucket=bucket,
            key=key,
            code="InternalError",
            transient=True,
        )

    def _wrap(self, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def faulty(*args: Any, **kwargs: Any) -> Any:
            rng = self._rng()
            if rng.random() < self.rate:
                raise self._fault(name, "before", args)  # S3 never saw the request
            result = call(*args, **kwargs)
            if rng.random() < self.rate:
                raise self._fault(name, "after", args)  # S3 acted; the answer was lost
            return result

        return faulty


class Checker:
    """Check rows against the buckets, read through a store of our own (no faults)."""

    def __init__(self, store: Any) -> None:
        from django_s3strata.core.types import StorageTier

        self.store = store
        self.tiers = {t.value: t for t in StorageTier}

    def suffix(self, tier: str, path: str) -> str | None:
        from django_s3strata.core.keys import split_key

        try:
            return split_key(self.store.tier(self.tiers[tier]), path)[1]
        except Exception:
            return None

    def listing(self) -> dict[str, dict[str, str]]:
        """Return {tier: {key: ETag}} of both buckets."""
        out: dict[str, dict[str, str]] = {}
        for name, tier in self.tiers.items():
            client, bucket = self.store.client(tier), self.store.tier(tier).bucket
            keys = out[name] = {}
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                keys.update((o["Key"], o["ETag"].strip('"')) for o in page.get("Contents", []))
        return out

    def read(self, tier: str, key: str) -> bytes | None:
        t = self.tiers[tier]
        try:
            body: bytes = self.store.client(t).get_object(Bucket=self.store.tier(t).bucket, Key=key)["Body"].read()
        except self.store.client(t).exceptions.NoSuchKey:
            return None
        return body

    def violations(self) -> list[str]:
        """Return each row that points at a missing object or at bytes that are not its file's.

        A row is read, then S3: when the object is missing, the row is read again, and only a row
        still at the same place, unchanged since (``updated_at``), counts: one that moved or was
        deleted in between was not pointing at nothing.
        """
        from django_s3strata.models import PhysicalFile

        fields = ("pk", "storage_tier", "path", "updated_at")
        rows = list(PhysicalFile.objects.values_list(*fields))
        listed = self.listing()
        found = []
        for row in rows:
            pk, tier, path, _ = row
            suffix = self.suffix(tier, path)
            if suffix is None:
                found.append(f"row {pk} at {tier} {path}: a path under no prefix")
                continue
            expected = content(suffix)
            if listed[tier].get(path) == md5(expected):
                continue
            got = self.read(tier, path)
            if got == expected:
                continue
            if got is not None:
                found.append(f"row {pk} at {tier} {path}: the object holds {got[:60]!r}, not its file's bytes")
                continue
            again = PhysicalFile.objects.filter(pk=pk).values_list(*fields).first()
            if again == row:
                found.append(f"row {pk} at {tier} {path}: no such object")
        return found


class Rounds:
    """One thread checking for all of a process's threads: an operation waits for a check that started after it ended.

    A check covers every operation that ended before it started, so four threads share one check
    instead of each making its own, and the S3 server spends its time on the operations.
    """

    def __init__(self, checker: Checker, on_error: Callable[[str, BaseException], None]) -> None:
        self.checker = checker
        self.on_error = on_error
        self.cond = threading.Condition()
        self.wanted = False
        self.stopped = False
        self.last_start = -math.inf
        self.count = 0
        self.found: list[str] = []
        self.thread = threading.Thread(target=self.loop, name="chaos-checker", daemon=True)

    def after(self, ended: float) -> None:
        """Return once a check that started after ``ended`` (``time.monotonic()``) has finished."""
        with self.cond:
            self.wanted = True
            self.cond.notify_all()
            while self.last_start < ended:
                self.cond.wait()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        self.thread.join()

    def loop(self) -> None:
        from django.db import connections

        try:
            while True:
                with self.cond:
                    while not self.wanted and not self.stopped:
                        self.cond.wait()
                    if not self.wanted:
                        return
                    self.wanted = False
                started, wall = time.monotonic(), time.time()
                try:
                    found = self.checker.violations()
                except Exception as exc:
                    self.on_error("check", exc)
                    found = []
                with self.cond:
                    self.count += 1
                    self.found.extend(f"check {self.count} at {wall:.3f}: {v}" for v in found)
                    self.last_start = started
                    self.cond.notify_all()
        finally:
            connections.close_all()


def interleavings(spans: list[list[Any]]) -> dict[str, int]:
    """Count pairs of operations on one file, by different threads, whose time spans overlap.

    ``spans`` holds [file id or None (a sweep or verify: every file), start, end, process, thread, ...].
    Also counts the cross-process pairs among them, and the sweeps that overlapped an operation on a file.
    """
    by_file: dict[Any, list[list[Any]]] = {}
    for span in spans:
        by_file.setdefault(span[0], []).append(span)
    pairs = cross = 0
    for file, group in by_file.items():
        if file is None:
            continue
        group.sort(key=lambda s: s[1])
        active: list[list[Any]] = []
        for span in group:
            active = [a for a in active if a[2] > span[1]]
            for a in active:
                if (a[3], a[4]) != (span[3], span[4]):
                    pairs += 1
                    cross += a[3] != span[3]
            active.append(span)
    ops = sorted((s for s in spans if s[0] is not None), key=lambda s: s[1])
    starts = [s[1] for s in ops]
    longest = max((s[2] - s[1] for s in ops), default=0.0)
    with_sweeps = 0
    for sweep in (s for s in spans if s[0] is None):
        # Operations that started before the sweep ended and ended after it started.
        first, last = bisect.bisect_left(starts, sweep[1] - longest), bisect.bisect_left(starts, sweep[2])
        with_sweeps += sum(1 for s in ops[first:last] if s[2] > sweep[1] and (s[3], s[4]) != (sweep[3], sweep[4]))
    return {"interleavings": pairs, "cross_process": cross, "with_sweeps": with_sweeps}


class Chaos:
    """One process's threads and what they saw."""

    def __init__(self, plan: dict[str, Any]) -> None:
        from django_s3strata import get_file_manager
        from django_s3strata.core.objectstore import ObjectStore

        self.plan = plan
        self.index: int = plan["index"]
        manager = get_file_manager()
        self.checker = Checker(ObjectStore(manager.config))
        self.faults = FaultInjector(manager.objectstore, f"{plan['seed']}:{self.index}", plan["fault_rate"])
        self.lock = threading.Lock()
        self.tally: Counter[str] = Counter()
        self.spans: list[list[Any]] = []
        self.rounds = Rounds(self.checker, self.error)
        self.errors: list[str] = []
        self.uploaded: list[str] = []
        self.delete_tried: list[str] = []
        self.deadline = time.monotonic() + plan["seconds"] if plan.get("seconds") else None

    # -- the operations ---------------------------------------------------------------------

    def run_one(self, op: str, pk: int | None, rng: random.Random, name: str) -> str:
        """Run ``op`` on row ``pk``; return its outcome."""
        from django_s3strata import operations
        from django_s3strata.models import PhysicalFile

        if op in ("sweep_adopt", "sweep_delete"):
            summary = operations.sweep_orphans(op.removeprefix("sweep_"), older_than=0)
            self.count(adopted=summary.adopted, orphans_deleted=summary.deleted)
            self.count(sweep_skipped=summary.skipped, sweep_failed=summary.failed)
            self.only_faults(op, [e["error"] for e in summary.errors])
            return "ok"
        if op == "verify_repair":
            # Another writer: a row whose object sits in the other tier is pointed there (relocate).
            verified = operations.verify_files(repair=True, concurrency=2)
            self.count(repaired=verified.repaired)
            return "ok"
        record = PhysicalFile.objects.get(pk=pk)
        # Always the other tier or visibility: a move to where the row already is writes nothing.
        if op == "set_tier":
            record.set_tier("COLD" if record.storage_tier == "HOT" else "HOT")
            return "ok"
        if op == "set_visibility":
            record.set_visibility("PRIVATE" if record.visibility.value == "PUBLIC" else "PUBLIC")
            return "ok"
        if op == "archive" and rng.random() < 0.5:
            if record.storage_tier == "COLD":
                record.set_tier("HOT")
            record.archive()
            return "ok"
        if op == "archive":
            if record.storage_tier == "COLD":
                record.set_tier("HOT", hot_duration=0)
            else:
                record.set_hot_duration(0)
            summary = operations.archive_expired(batch_size=10, concurrency=2)
            self.count(archived=summary.moved, archive_skipped=summary.skipped, archive_failed=summary.failed)
            self.only_faults("archive_expired", [f["error"] for f in summary.failures])
            return "fault" if summary.failed else "ok"
        # delete
        suffix = self.checker.suffix(record.storage_tier, record.path)
        with self.lock:
            self.delete_tried.append(suffix or record.path)
        try:
            record.delete()
        finally:
            self.replenish(rng, name)
        return "ok"

    def replenish(self, rng: random.Random, name: str) -> None:
        """Upload a new file while the table holds fewer rows than the population.

        The upload claims its key first, as the other writers do. The library's upload does not:
        it writes a key no record names yet, and the sweep's grace period (not 0 outside tests)
        keeps the sweep away from it until its record exists.
        """
        from django_s3strata import get_file_manager
        from django_s3strata.adapters import claim_keys, release_keys
        from django_s3strata.core import UploadOptions
        from django_s3strata.core.keys import build_key
        from django_s3strata.core.manager import claim_owner
        from django_s3strata.core.types import FileVisibility, StorageTier
        from django_s3strata.models import PhysicalFile

        if PhysicalFile.objects.count() >= self.plan["population"]:
            return
        with self.lock:
            self.tally["uploads"] += 1
            n = self.tally["uploads"]
        suffix = f"chaos/p{self.index}-{name}-{n}.bin"
        tier, visibility = rng.choice(list(StorageTier)), rng.choice(list(FileVisibility))
        manager = get_file_manager()
        key = build_key(manager.objectstore.tier(tier), visibility, suffix)
        owner = claim_owner()
        if claim_keys(owner, [(tier, key)], 60):
            return
        try:
            manager.sync.upload(content(suffix), UploadOptions(tier=tier, visibility=visibility, path_suffix=suffix))
            with self.lock:
                self.uploaded.append(suffix)
        except Exception as exc:
            self.count(upload_failed=1)
            if not self.transient(exc):
                self.error(f"upload {suffix}", exc)
        finally:
            release_keys(owner, [(tier, key)])

    # -- bookkeeping ------------------------------------------------------------------------

    def count(self, **amounts: int) -> None:
        with self.lock:
            self.tally.update(amounts)

    def error(self, what: str, exc: BaseException) -> None:
        with self.lock:
            self.tally["unexpected"] += 1
            if len(self.errors) < 50:
                self.errors.append(f"{what}: {type(exc).__name__}: {exc}")

    def only_faults(self, what: str, errors: list[str]) -> None:
        """Record the failures an engine reported that were not injected faults."""
        for error in errors:
            if "injected fault" not in error:
                self.error(what, RuntimeError(error))

    @staticmethod
    def transient(exc: BaseException) -> bool:
        from django_s3strata.core.exceptions import StorageError

        return isinstance(exc, StorageError) and exc.transient

    def outcome(self, op: str, exc: BaseException) -> str:
        """Return what an operation's exception means: another writer, an injected fault, a row gone, or a bug."""
        from django_s3strata.core.exceptions import ConflictError
        from django_s3strata.models import PhysicalFile

        if isinstance(exc, ConflictError):
            return "conflict"
        if self.transient(exc):
            return "fault"
        if isinstance(exc, PhysicalFile.DoesNotExist):
            return "gone"  # deleted by another thread between the pick and the read
        self.error(op, exc)
        return "error"

    def thread(self, t: int) -> None:
        from django.db import connections

        from django_s3strata.models import PhysicalFile

        name = f"t{t}"
        threading.current_thread().name = f"chaos-{self.index}-{name}"
        rng = random.Random(f"{self.plan['seed']}:{self.index}:{t}")
        ops, weights = list(OPERATIONS), list(OPERATIONS.values())
        quota = self.plan.get("ops")
        done = 0
        try:
            while (quota is None or done < quota) and (self.deadline is None or time.monotonic() < self.deadline):
                op = rng.choices(ops, weights)[0]
                pk: int | None = None
                if op not in ("sweep_adopt", "sweep_delete", "verify_repair"):
                    ids = sorted(PhysicalFile.objects.values_list("pk", flat=True))
                    if not ids:
                        self.replenish(rng, name)
                        continue
                    pk = rng.choice(ids)
                start = time.time()
                try:
                    result = self.run_one(op, pk, rng, name)
                except Exception as exc:
                    result = self.outcome(op, exc)
                end = time.time()
                done += 1
                self.rounds.after(time.monotonic())
                checked = time.time()
                with self.lock:
                    self.tally["ops"] += 1
                    if self.tally["ops"] % 1000 == 0:  # progress, in the worker's log
                        print(f"chaos {self.index}: {self.tally['ops']} operations", file=sys.stderr, flush=True)
                    self.tally[f"{op}:{result}"] += 1
                    self.tally[result] += 1
                    self.spans.append([pk, start, end, self.index, t, op])
                    self.tally["ms:check"] += round((checked - end) * 1000)
                    self.tally[f"ms:{op}"] += round((end - start) * 1000)
        finally:
            connections.close_all()

    def report(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "tally": dict(self.tally),
            "faults": dict(self.faults.counts),
            "checks": self.rounds.count,
            "violations": self.rounds.found,
            "errors": self.errors,
            "uploaded": self.uploaded,
            "delete_tried": self.delete_tried,
            "spans": self.spans,
        }


def main() -> None:
    """Run the plan given on the command line."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.db import connections

    plan = json.loads(sys.argv[1])
    chaos = Chaos(plan)
    chaos.checker.listing()  # warm the clients before the start
    connections.close_all()
    print("ready", flush=True)
    sys.stdin.readline()
    if plan.get("seconds"):
        chaos.deadline = time.monotonic() + plan["seconds"]
    threads = [threading.Thread(target=chaos.thread, args=(t,)) for t in range(plan["threads"])]
    chaos.rounds.thread.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    chaos.rounds.stop()
    with open(plan["out"], "w") as fh:
        json.dump(chaos.report(), fh)
    print("done", flush=True)


if __name__ == "__main__":
    main()
