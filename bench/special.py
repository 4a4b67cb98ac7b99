"""Special paths ON and OFF: combined async INSERTs and array parameters, with and without S3 latency.

Two paths are kept for speed: ``inserts.AsyncInserts`` (concurrent async uploads' rows in one
``bulk_create``) and ``querysets.in_array`` (one array parameter on PostgreSQL instead of a
placeholder per value, for the orphan scan's lookups). Two more were measured here and removed
because they did not pay with S3 latency: a prepared INSERT for the sync adapter's rows, and the
array parameter for archival batches' ids (docs/performance.md). Each case runs the same work with
the library's path (ON) and with the plain ORM call it replaces (OFF, patched here and only for
the timed block), ON and OFF alternating which goes first, at each ``--latency-ms`` (every S3
request of every side held that long: ``measure.Latency``), for ``--special-rounds`` rounds.
Every round's figure goes to the JSON; the summary gives medians, the round-to-round spread and
the gain. Not in the default run: ``python -m bench.run --only special``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

from .cases import THREADS, Bench, clear_rows, ours_clients, seed_objects, seed_rows
from .env import point
from .measure import Latency, Measure, Requests, pool

# case -> (the path it measures, unit)
CASES = {
    "async upload, asyncio.gather": ("AsyncInserts", "files/s"),
    "orphan scan, 10% orphans": ("in_array", "objects/s"),
}


class _OneByOne:
    """What the async adapter does without AsyncInserts: ``sync_to_async(PhysicalFile.objects.create)`` for each row."""

    def __init__(self) -> None:
        from asgiref.sync import sync_to_async

        from django_s3strata.models import PhysicalFile

        self._create = sync_to_async(PhysicalFile.objects.create)

    async def create(self, row: dict[str, Any]) -> Any:
        return await self._create(**row)


def _holders(function: Any) -> Iterator[tuple[Any, str]]:
    """Yield (module, name) for every loaded django_s3strata module that holds ``function`` under a name."""
    for module_name, module in list(sys.modules.items()):
        if module_name.split(".")[0] == "django_s3strata" and module is not None:
            for name, value in list(vars(module).items()):
                if value is function:
                    yield module, name


@contextlib.contextmanager
def switched(path: str, on: bool, manager: Any) -> Iterator[None]:
    """Run the block with ``path`` as the library has it (``on``) or replaced by the plain ORM call (OFF).

    OFF patches every module that imported the helper by name, so a caller moved to another
    module is still covered; a path the library no longer has fails here, loudly.
    """
    from django.db.models import Q

    from django_s3strata import querysets

    def in_array(field: str, values: list[Any], sql_type: str) -> Q:
        return Q(**{f"{field}__in": values})

    plain = {"in_array": {querysets.in_array: in_array}}
    with contextlib.ExitStack() as stack:
        if not on and path == "AsyncInserts":
            stack.enter_context(mock.patch.object(manager.adapter, "_inserts", _OneByOne()))
        elif not on:
            for special, replacement in plain[path].items():
                holders = list(_holders(special))
                assert any(m.__name__ != special.__module__ for m, _ in holders), f"no caller holds {special.__name__}"
                for module, name in holders:
                    stack.enter_context(mock.patch.object(module, name, replacement))
        yield


def _check_paths_live() -> None:
    """Fail unless ON really takes the special paths (no save receivers, which make AsyncInserts create row by row)."""
    from django_s3strata import inserts

    assert not inserts._save_signals(), (
        "a pre_save/post_save receiver makes AsyncInserts fall back to create(): ON would equal OFF"
    )


def summarize(on: list[float], off: list[float]) -> dict[str, Any]:
    """Return medians, ranges, the gain of ON over OFF (throughputs) and whether it beats the spread."""

    def spread(values: list[float]) -> float:
        return (max(values) - min(values)) / statistics.median(values)

    paired = [a / b - 1 for a, b in zip(on, off, strict=True)]
    gain = statistics.median(on) / statistics.median(off) - 1
    noise = max(spread(on), spread(off))
    return {
        "on": {"median": statistics.median(on), "min": min(on), "max": max(on)},
        "off": {"median": statistics.median(off), "min": min(off), "max": max(off)},
        "gain": gain,
        "paired_gain": {
            "median": statistics.median(paired),
            "min": min(paired),
            "max": max(paired),
            "wins": sum(g > 0 for g in paired),
        },
        "spread": noise,
        "pays": gain > noise,
    }


def case_special(b: Bench) -> None:
    """Each special path ON and OFF on the same work, interleaved, at each latency; results in ``b.sweeps``."""
    from asgiref.sync import sync_to_async
    from django.db import connection, connections

    from django_s3strata import operations
    from django_s3strata.core import UploadOptions

    args = b.args
    latency = Latency()
    requests = Requests()
    seeder = b.servers.client()  # untimed seeding: no latency
    raw = b.servers.client()
    latency.watch(raw)
    buckets = {name: (b.servers.bucket(), b.servers.bucket()) for name in ("uploads", "archive", "orphans")}
    payload = os.urandom(4096)
    pg = connection.vendor == "postgresql"

    def use(name: str, **options: Any) -> Any:
        manager = point(b.tiers(*buckets[name], **options))
        latency.watch(*ours_clients(manager))
        requests.watch(*ours_clients(manager))
        return manager

    def counted() -> dict[str, Any]:
        return {"queries": b.queries.take(), "array_queries": b.queries.take_arrays(), "s3_requests": requests.take()}

    def async_uploads(on: bool, tag: str) -> tuple[Measure, int, dict[str, Any]]:
        manager = use("uploads")
        n = args.special_async_files

        async def gathered() -> None:
            await asyncio.gather(*(manager.upload(payload, UploadOptions(filename=f"a{tag}-{i}.bin")) for i in range(n)))
            await sync_to_async(connections.close_all)()

        counted()
        with switched("AsyncInserts", on, manager), Measure() as m:
            asyncio.run(gathered())
        return m, n, counted()

    n_orphans = args.special_orphans
    orphan_keys = [f"private/{i:07d}-f.bin" for i in range(n_orphans)]
    seed_objects(seeder, buckets["orphans"][0], orphan_keys)

    def orphans(on: bool, tag: str) -> tuple[Measure, int, dict[str, Any]]:
        manager = use("orphans")
        clear_rows()
        seed_rows([k for i, k in enumerate(orphan_keys) if i % 10])
        counted()
        with switched("in_array", on, manager), Measure() as m:
            summary = operations.sweep_orphans("report", tier="HOT", older_than=0)
        assert summary.found == len(range(0, n_orphans, 10)), summary
        return m, n_orphans, counted()

    def raw_threads(tag: str) -> float:
        n = args.special_async_files

        def put(i: int) -> None:
            raw.put_object(Bucket=buckets["uploads"][0], Key=f"raw/a{tag}-{i}.bin", Body=payload)

        with pool(THREADS) as ex, Measure() as m:
            list(ex.map(put, range(n)))
        return n / m.seconds

    plan: dict[str, tuple[Callable[[bool, str], tuple[Measure, int, dict[str, Any]]], Callable[[str], float] | None]] = {
        "async upload, asyncio.gather": (async_uploads, raw_threads),
        "orphan scan, 10% orphans": (orphans, None),
    }
    _check_paths_live()
    rows: dict[str, dict[str, Any]] = {}
    for r in range(args.special_rounds):
        for ms in args.latency_ms:
            latency.seconds = ms / 1000
            for case, (run, reference) in plan.items():
                row = rows.setdefault(f"{case} @ {ms} ms", {"case": case, "path": CASES[case][0], "unit": CASES[case][1],
                                                           "latency_ms": ms, "on": [], "off": [], "raw boto3": [],
                                                           "cpu_ms": {"on": [], "off": []}, "counts": {}})  # fmt: skip
                # ON first in even rounds, OFF first in odd ones: neither side always gets the warmer machine.
                for on in (True, False) if r % 2 == 0 else (False, True):
                    side = "on" if on else "off"
                    m, n, counts = run(on, f"{r}-{ms}-{int(on)}")
                    row[side].append(n / m.seconds)
                    row["cpu_ms"][side].append(m.cpu_seconds * 1000 / n)  # this process's CPU per file or object
                    row["counts"][side] = counts
                    if pg and row["path"].startswith("in_array"):
                        assert (counts["array_queries"] > 0) == on, f"ON must bind arrays and OFF must not: {counts}"
                if reference is not None:
                    row["raw boto3"].append(reference(f"{r}-{ms}"))
            print(f"bench: special paths, round {r + 1}/{args.special_rounds} at {ms} ms done", file=sys.stderr)
    for row in rows.values():
        runs = {"on": row.pop("on"), "off": row.pop("off"), "raw boto3": row.pop("raw boto3")}
        row.update(summarize(runs["on"], runs["off"]), runs=runs)
        row["cpu_ms"] = {side: statistics.median(v) for side, v in row["cpu_ms"].items()} | {"runs": row["cpu_ms"]}
        row["raw boto3"] = statistics.median(runs["raw boto3"]) if runs["raw boto3"] else None
    clear_rows()
    b.sweeps["special_paths"] = {
        "rounds": args.special_rounds,
        "latency_ms": args.latency_ms,
        "sizes": {
            "async uploads": args.special_async_files,
            "orphan scan": n_orphans,
        },
        "rows": list(rows.values()),
    }
