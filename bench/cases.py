"""The cases: each measured for django_s3strata, raw boto3 done the best way, and django-storages where it exists.

A case returns result entries (see ``entry``); ratios are always taken against a figure of the
same run. Raw boto3 "done the best way" means: one shared client with a connection pool larger
than the thread count, a thread pool of 16, server-side ``copy_object`` + ``delete_object``,
``upload_file``/``upload_fileobj`` with a ``TransferConfig``, ``client.copy`` for big copies on
one endpoint, and a streamed ``get_object`` into ``upload_fileobj`` across endpoints.
"""

from __future__ import annotations

import asyncio
import html
import os
import pathlib
import re
import time
import urllib.error
import urllib.request
import uuid
from argparse import Namespace
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from .env import ACCESS_KEY, SECRET_KEY, Servers, point
from .measure import Measure, MiB, Queries, Requests, best_time, pool, settle, timed

THREADS = 16  # raw boto3's thread pool, and ours where a case has one


@dataclass
class Bench:
    """What every case needs: the servers, the flags, a scratch directory and the query counter."""

    servers: Servers
    args: Namespace
    data_dir: pathlib.Path
    queries: Queries
    results: list[dict[str, Any]] = field(default_factory=list)
    sweeps: dict[str, Any] = field(default_factory=dict)

    def tiers(self, hot: str, cold: str, cold_endpoint: int = 0, **options: Any) -> dict[str, Any]:
        return {"HOT": self.servers.tier(0, hot), "COLD": self.servers.tier(cold_endpoint, cold), **options}


def entry(
    case: str,
    unit: str,
    ours: float,
    boto3: float | None,
    *,
    target: float,
    op: str = ">=",
    peer: float | None = None,
    ratio: float | None = None,
    against: str = "raw boto3",
    memory: dict[str, float] | None = None,
    memory_bound: tuple[str, float] | None = None,
    requests: dict[str, dict[str, int]] | None = None,
    queries: dict[str, int] | None = None,
    extra_ok: bool = True,
    note: str = "",
    **details: Any,
) -> dict[str, Any]:
    """Return one result: figures, the ratio the target is about, and whether it is met."""
    if ratio is None and boto3:
        ratio = ours / boto3
    speed_ok = ratio is not None and (ratio >= target if op == ">=" else ratio <= target)
    memory_ok = True
    if memory_bound is not None and memory is not None:
        bound_op, bound = memory_bound
        memory_ok = memory["ours"] < bound if bound_op == "<" else memory["ours"] <= bound
    return {
        "case": case,
        "unit": unit,
        "ours": ours,
        "boto3": boto3,
        "django-storages": peer,
        "ratio": ratio,
        "against": against,
        "target": {"op": op, "value": target},
        "memory_mib": memory,
        "memory_bound_mib": {"op": memory_bound[0], "value": memory_bound[1]} if memory_bound else None,
        "met": bool(speed_ok and memory_ok and extra_ok),
        "met_speed": bool(speed_ok),
        "met_memory": bool(memory_ok),
        "requests": requests,
        "queries": queries,
        "note": note,
        **details,
    }


def ours_clients(manager: Any) -> list[Any]:
    from django_s3strata.core import StorageTier

    return [manager.objectstore.client(t) for t in StorageTier]


def peer_storage(servers: Servers, bucket: str, index: int = 0, **options: Any) -> Any:
    """Return a django-storages S3Storage on ``bucket`` (path-style, SigV4), as its users configure it."""
    from storages.backends.s3 import S3Storage

    return S3Storage(bucket_name=bucket, endpoint_url=servers.url(index), access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                     region_name="us-east-1", signature_version="s3v4", addressing_style="path", file_overwrite=True,
                     **options)  # fmt: skip


def seed_objects(client: Any, bucket: str, keys: list[str], body: bytes = b"x") -> dict[str, str]:
    """Put ``body`` at every key; return each key's ETag."""
    with pool(32) as ex:
        etags = list(ex.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=body)["ETag"].strip('"'), keys))
    return dict(zip(keys, etags, strict=True))


def seed_rows(
    keys: list[str], *, tier: str = "HOT", expired: bool = False, stored: tuple[int, dict[str, str]] | None = None
) -> None:
    """Rows for ``keys``; with ``stored`` (size, ETags) as our uploads write them, else as s3strata-ts does."""
    from django.utils import timezone

    from django_s3strata.models import PhysicalFile

    now = timezone.now()
    hot_until = now - timedelta(hours=1) if expired else None
    size, etags = stored if stored is not None else (None, {})
    PhysicalFile.objects.bulk_create(
        [PhysicalFile(storage_tier=tier, filename=k.rsplit("/", 1)[-1], path=k, hot_until=hot_until, created_at=now, updated_at=now,
                      size=size, etag=etags.get(k))
         for k in keys],
        batch_size=2000,
    )  # fmt: skip


def clear_rows() -> None:
    from django_s3strata.models import PhysicalFile

    PhysicalFile.objects.all()._raw_delete("default")  # no signals, no per-row S3 delete


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


# -- URLs -------------------------------------------------------------------------------------------


def case_urls(b: Bench) -> None:
    """Presigned URLs (ours: a cached-key SigV4 signer; boto3: generate_presigned_url) and public URLs."""
    from django_s3strata.core import StorageTier

    hot, cold = b.servers.bucket(), b.servers.bucket()
    manager = point(b.tiers(hot, cold))
    store = manager.objectstore
    ours_req = Requests().watch(*ours_clients(manager))
    client = b.servers.client()
    client.put_object(Bucket=hot, Key="private/probe.txt", Body=b"probe")
    url = store.presigned_url(StorageTier.HOT, "private/probe.txt", 60)
    status, body = fetch(url)
    assert (status, body) == (200, b"probe"), f"our presigned URL must download the file: {status}"
    tampered = re.sub(r"(X-Amz-Signature=)([0-9a-f])", lambda m: m.group(1) + ("0" if m.group(2) != "0" else "1"), url)
    enforced = fetch(tampered)[0] == 403
    assert b.servers.kind != "seaweed" or enforced, "SeaweedFS must refuse a tampered signature"
    n = b.args.presigns
    slow_n = max(500, n // 10)
    ours = best_time(lambda: [store.presigned_url(StorageTier.HOT, f"private/{i}.txt", 3600) for i in range(n)])
    raw = best_time(
        lambda: [client.generate_presigned_url("get_object", Params={"Bucket": hot, "Key": f"private/{i}.txt"}, ExpiresIn=3600)
                 for i in range(slow_n)]
    )  # fmt: skip
    peer = peer_storage(b.servers, hot)
    theirs = best_time(lambda: [peer.url(f"private/{i}.txt") for i in range(slow_n)])
    b.results.append(entry("presigned URL for a private file", "URLs/s", n / ours, slow_n / raw, peer=slow_n / theirs, target=10,
                           requests={"ours": ours_req.take()}, downloads=True, signature_enforced=enforced))  # fmt: skip
    # Temporary keys (an IAM role, STS): the signer reads the current credentials on every call and
    # adds X-Amz-Security-Token. Signing only: SeaweedFS refuses session tokens its own STS did not issue.
    import boto3
    from botocore.config import Config

    from django_s3strata.core import S3StrataConfig
    from django_s3strata.core.objectstore import ObjectStore

    host, port = b.servers.endpoints[0]
    token = "IQoJb3JpZ2luX2VjE" + "Lz/+x9" * 120  # as long as a real STS token (about 700 characters)
    tokened = ObjectStore(S3StrataConfig(endpoint=host, port=port, use_ssl=False, access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                                         session_token=token, hot_bucket=hot, cold_bucket=cold))  # fmt: skip
    sts_client = boto3.client(
        "s3", endpoint_url=b.servers.url(), aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        aws_session_token=token, region_name="us-east-1", config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )  # fmt: skip
    assert "X-Amz-Security-Token=" in tokened.presigned_url(StorageTier.HOT, "private/probe.txt", 60)
    ours = best_time(lambda: [tokened.presigned_url(StorageTier.HOT, f"private/{i}.txt", 3600) for i in range(n)])
    raw = best_time(
        lambda: [sts_client.generate_presigned_url("get_object", Params={"Bucket": hot, "Key": f"private/{i}.txt"}, ExpiresIn=3600)
                 for i in range(slow_n)]
    )  # fmt: skip
    b.results.append(entry("presigned URL with a session token", "URLs/s", n / ours, slow_n / raw, target=10))
    m = n * 10
    hot_tier = StorageTier.HOT  # a local, as the raw side's host, port and bucket are (an Enum attribute costs 0.1 µs)
    ours = best_time(lambda: [store.public_url(hot_tier, f"public/{i}.txt") for i in range(m)], repeat=5)
    # A correct raw URL escapes the key (a name with a space or "#" would break a bare f-string).
    raw = best_time(lambda: [f"http://{host}:{port}/{hot}/{quote(f'public/{i}.txt', safe='/~')}" for i in range(m)], repeat=5)
    public_peer = peer_storage(b.servers, hot, querystring_auth=False)
    theirs = best_time(lambda: [public_peer.url(f"public/{i}.txt") for i in range(m // 10)])
    b.results.append(entry("public URL", "URLs/s", m / ours, m / raw, peer=(m // 10) / theirs, target=0.8,
                           against="raw f-string with urllib.parse.quote"))  # fmt: skip


# -- small uploads ----------------------------------------------------------------------------------


#: Uploads of the one-at-a-time case: a script or a view storing files in a loop.
SEQUENTIAL = 300


def case_uploads(b: Bench) -> None:
    """1,000 x 4 KiB: ours through the async API and a thread pool (Django ORM records), raw put_object on 16 threads."""
    from asgiref.sync import sync_to_async
    from django.core.files.base import ContentFile
    from django.db import connections

    from django_s3strata.core import FileManager, InMemoryAdapter, UploadOptions

    n = b.args.files
    hot, cold = b.servers.bucket(), b.servers.bucket()
    manager = point(b.tiers(hot, cold))
    ours_req = Requests().watch(*ours_clients(manager))
    payload = os.urandom(4096)
    client = b.servers.client()
    raw_req = Requests().watch(client)
    b.queries.take()

    sync = manager.sync
    core = FileManager(manager.config, InMemoryAdapter())

    async def gathered(tag: str) -> None:
        await asyncio.gather(*(manager.upload(payload, UploadOptions(filename=f"a{tag}-{i}.bin")) for i in range(n)))
        await sync_to_async(connections.close_all)()

    def threaded(upload: Callable[[int], Any]) -> float:
        with pool(THREADS) as ex:
            return timed(lambda: list(ex.map(upload, range(n)))).seconds

    def side(name: str, r: int) -> float:
        if name == "async":
            return timed(lambda: asyncio.run(gathered(str(r)))).seconds
        if name == "threads":
            return threaded(lambda i: sync.upload(payload, UploadOptions(filename=f"t{r}-{i}.bin")))
        if name == "core":
            return threaded(lambda i: core.sync.upload(payload, UploadOptions(filename=f"c{r}-{i}.bin")))
        if name == "one by one":
            return timed(
                lambda: [sync.upload(payload, UploadOptions(filename=f"o{r}-{i}.bin")) for i in range(SEQUENTIAL)]
            ).seconds
        if name == "raw one by one":
            return timed(
                lambda: [client.put_object(Bucket=hot, Key=f"rawo/{r}-{i}.bin", Body=payload) for i in range(SEQUENTIAL)]
            ).seconds
        return threaded(lambda i: client.put_object(Bucket=hot, Key=f"raw/{r}-{i}.bin", Body=payload))

    # Interleaved rounds, the best of each side counts: these machines drift by a third from one
    # minute to the next, and one round of each in a row would time them under different loads.
    best: dict[str, float] = {}
    counts: dict[str, dict[str, Any]] = {}
    for r in range(b.args.repeat):
        for name in ("async", "threads", "core", "raw", "one by one", "raw one by one"):
            best[name] = min(best.get(name, float("inf")), side(name, r))
            counts[name] = {"requests": (raw_req if name.startswith("raw") else ours_req).take(), "queries": b.queries.take()}
    ours_async, ours_threads, ours_core, raw = (best[k] for k in ("async", "threads", "core", "raw"))
    async_req, async_q = counts["async"]["requests"], counts["async"]["queries"]
    threads_req, threads_q = counts["threads"]["requests"], counts["threads"]["queries"]
    raw_counts = counts["raw"]["requests"]
    storage = peer_storage(b.servers, hot)
    with pool(THREADS) as ex:
        theirs = timed(lambda: list(ex.map(lambda i: storage.save(f"ds/{i}.bin", ContentFile(payload)), range(n))))
    per = {"unit": "files/s", "boto3": n / raw, "peer": n / theirs.seconds, "target": 0.9}
    b.results.append(entry(f"upload {n:,} x 4 KiB, async API (asyncio.gather)", ours=n / ours_async,
                           requests={"ours": async_req, "boto3": raw_counts}, queries={"ours": async_q}, **per))  # fmt: skip
    b.results.append(entry(f"upload {n:,} x 4 KiB, 16 threads (sync API)", ours=n / ours_threads,
                           requests={"ours": threads_req, "boto3": raw_counts}, queries={"ours": threads_q}, **per))  # fmt: skip
    b.results.append(entry(f"upload {n:,} x 4 KiB, 16 threads, core without a database", ours=n / ours_core,
                           note="diagnostic: the same uploads with the InMemoryAdapter, to separate S3 work from database work",
                           **per))  # fmt: skip
    b.results.append(entry(f"upload {SEQUENTIAL} x 4 KiB one at a time (sync API, one thread, with the row)", "files/s",
                           SEQUENTIAL / best["one by one"], SEQUENTIAL / best["raw one by one"], target=0.9,
                           against="a raw put_object loop", queries={"ours": counts["one by one"]["queries"]}))  # fmt: skip
    # Throughput against concurrency, for the plot.
    m = b.args.sweep_files
    sweep: dict[str, list[float]] = {"threads": [], "ours": [], "ours_core": [], "boto3": []}
    for threads in b.args.sweep_threads:
        with pool(threads) as ex:
            o = timed(lambda: list(ex.map(lambda i: sync.upload(payload, UploadOptions(filename=f"s{i}.bin")), range(m))))
            c = timed(lambda: list(ex.map(lambda i: core.sync.upload(payload, UploadOptions(filename=f"s{i}.bin")), range(m))))
            r = timed(lambda: list(ex.map(lambda i: client.put_object(Bucket=hot, Key=f"s/{i}", Body=payload), range(m))))
        sweep["threads"].append(threads)
        sweep["ours"].append(m / o.seconds)
        sweep["ours_core"].append(m / c.seconds)
        sweep["boto3"].append(m / r.seconds)
    b.sweeps["uploads_by_threads"] = {"files": m, **sweep}


# -- archival ---------------------------------------------------------------------------------------


def case_archive(b: Bench, n: int) -> None:
    """n expired small files HOT -> COLD: ours archive_expired (database included) vs raw copy+delete on 16 threads."""
    from django_s3strata import operations
    from django_s3strata.models import PhysicalFile

    hot, cold = b.servers.bucket(), b.servers.bucket()
    manager = point(b.tiers(hot, cold, ARCHIVE_CONCURRENCY=THREADS))
    client = b.servers.client()
    ours_req = Requests().watch(*ours_clients(manager))
    raw_req = Requests().watch(client)
    counted: dict[str, Any] = {}

    def run_ours(r: int, recorded: bool = True) -> Measure:
        keys = [f"private/{uuid.uuid4()}-{r}-{i}.bin" for i in range(n)]
        etags = seed_objects(client, hot, keys, b"x" * 1024)
        clear_rows()
        # Rows as our uploads write them (size and ETag), or as s3strata-ts does (neither).
        seed_rows(keys, expired=True, stored=(1024, etags) if recorded else None)
        ours_req.take()
        b.queries.take()
        with Measure() as m:
            summary = operations.archive_expired()
        side = "ours" if recorded else "unrecorded"
        counted[side], counted[side + "-queries"] = ours_req.take(), b.queries.take()
        assert summary.moved == n, summary
        assert PhysicalFile.objects.filter(storage_tier="COLD").count() == n
        return m

    def move(k: str) -> None:
        client.copy_object(Bucket=cold, Key=k, CopySource={"Bucket": hot, "Key": k})
        client.delete_object(Bucket=hot, Key=k)

    def run_raw(r: int) -> Measure:
        keys = [f"raw/{r}/{i}.bin" for i in range(n)]
        seed_objects(client, hot, keys, b"x" * 1024)
        raw_req.take()
        with pool(THREADS) as ex:
            m = timed(lambda: list(ex.map(move, keys)))
        counted["boto3"] = raw_req.take()
        return m

    # Interleaved rounds, each side first in turn; the best of each counts (the machine drifts).
    # Rows that know no ETag (written by s3strata-ts, adopted, or from before the etag column) take
    # part in the rounds too: a target of their own since they are copied without being read first.
    ours_runs: list[Measure] = []
    raw_runs: list[Measure] = []
    unrecorded_runs: list[Measure] = []
    for r in range(b.args.repeat):
        sides = [(run_ours, ours_runs), (run_raw, raw_runs), (lambda r: run_ours(r, recorded=False), unrecorded_runs)]
        for run, runs in sides[r % 3 :] + sides[: r % 3]:
            runs.append(run(r))
    ours, raw, unrecorded = _merge(ours_runs), _merge(raw_runs), _merge(unrecorded_runs)
    counts, queries, raw_counts = counted["ours"], counted["ours-queries"], counted["boto3"]
    left = client.list_objects_v2(Bucket=hot).get("KeyCount", 0)
    assert left == 0, f"{left} objects left in HOT"
    b.results.append(entry(f"archive {n:,} expired small files", "files/s", n / ours.seconds, n / raw.seconds, target=0.9,
                           memory={"ours": ours.memory_mib, "boto3": raw.memory_mib},
                           requests={"ours": counts, "boto3": raw_counts}, queries={"ours": queries},
                           settings={"ARCHIVE_CONCURRENCY": THREADS, "ARCHIVE_BATCH_SIZE": "default"},
                           ours_runs={"files/s": [n / m.seconds for m in ours_runs]},
                           boto3_runs={"files/s": [n / m.seconds for m in raw_runs]}))  # fmt: skip
    b.results.append(entry(f"archive {n:,} expired small files, rows without size or ETag", "files/s", n / unrecorded.seconds,
                           n / raw.seconds, target=1.0, requests={"ours": counted["unrecorded"], "boto3": raw_counts},
                           queries={"ours": counted["unrecorded-queries"]},
                           ours_runs={"files/s": [n / m.seconds for m in unrecorded_runs]},
                           note="rows as s3strata-ts writes them: each file copied with one CopyObject, not read first"))  # fmt: skip
    clear_rows()


# -- large files ------------------------------------------------------------------------------------


def make_file(path: pathlib.Path, mib: int) -> None:
    block = os.urandom(MiB)
    with path.open("wb") as fh:
        for i in range(mib):
            fh.write(block[i % 256 :] + block[: i % 256])  # every MiB different, cheaply


def _merge(runs: list[Measure]) -> Measure:
    """Return the best time of ``runs`` with the largest memory growth of any of them."""
    merged = Measure()
    merged.seconds = min(m.seconds for m in runs)
    merged.memory_mib = max(m.memory_mib for m in runs)
    return merged


def _best(variants: dict[str, Measure]) -> tuple[str, Measure]:
    """Return the fastest of raw boto3's ways of doing one thing (the best way is the one that wins here)."""
    name = min(variants, key=lambda k: variants[k].seconds)
    return name, variants[name]


def case_big(b: Bench, mib: int, *, full: bool = True) -> dict[str, Any]:
    """Upload from a file, move on one endpoint (full runs only) and across endpoints; time and client memory."""
    from boto3.s3.transfer import TransferConfig
    from django.core.files import File

    from django_s3strata.core import SetTierOptions, UploadOptions

    path = b.data_dir / f"big-{mib}.bin"
    make_file(path, mib)
    hot, cold, far = b.servers.bucket(0), b.servers.bucket(0), b.servers.bucket(1)
    client, other = b.servers.client(0), b.servers.client(1)
    manager = point(b.tiers(hot, cold))
    sync = manager.sync
    ours_req = Requests().watch(*ours_clients(manager))
    raw_req = Requests().watch(client, other)
    point_data: dict[str, Any] = {"mib": mib}
    transfer = TransferConfig()  # boto3's defaults: 8 MiB parts, 10 threads
    # Untimed multipart uploads first: the first one in a process pays for imports and thread start-up.
    warm = b.data_dir / "warm.bin"
    make_file(warm, 16)
    sync.upload(warm, UploadOptions(filename="warm.bin"))
    client.upload_file(str(warm), hot, "raw/warm.bin", Config=transfer)
    other.upload_file(str(warm), far, "raw/warm.bin", Config=transfer)
    ours_req.take(), raw_req.take()

    rounds = range(b.args.repeat)
    ups: list[Measure] = []
    variants: dict[str, list[Measure]] = {"upload_fileobj": [], "upload_file": []}
    variant_req: dict[str, dict[str, int]] = {}
    for r in rounds:  # interleaved, best of ``--repeat``: these machines drift by a third from one minute to the next
        with Measure() as up:
            f = sync.upload(path, UploadOptions(filename=f"big-{mib}.bin"))
        ups.append(up)
        up_req = ours_req.take()
        with path.open("rb") as fh, Measure() as m:
            client.upload_fileobj(fh, hot, f"raw/fileobj-{r}.bin", Config=transfer)
        variants["upload_fileobj"].append(m)
        variant_req["upload_fileobj"] = raw_req.take()
        with Measure() as m:
            client.upload_file(str(path), hot, "raw/file.bin", Config=transfer)
        variants["upload_file"].append(m)
        variant_req["upload_file"] = raw_req.take()
    up = _merge(ups)
    raw_name, raw = _best({k: _merge(v) for k, v in variants.items()})
    raw_up_req = variant_req[raw_name]
    memory = {"ours": up.memory_mib, "boto3": raw.memory_mib}
    peer = None
    if full:
        storage = peer_storage(b.servers, hot)
        with path.open("rb") as fh, Measure() as theirs:
            storage.save("ds/big.bin", File(fh))
        peer, memory["django-storages"] = mib / theirs.seconds, theirs.memory_mib
    assert client.head_object(Bucket=hot, Key=f.path)["ContentLength"] == mib * MiB
    point_data["upload"] = {"ours": up.memory_mib, "boto3": raw.memory_mib, "boto3_variant": raw_name}
    if full:
        b.results.append(entry(f"upload {mib} MiB from a file", "MiB/s", mib / up.seconds, mib / raw.seconds, peer=peer, target=0.95,
                               memory=memory, memory_bound=("<=", 64), requests={"ours": up_req, "boto3": raw_up_req},
                               boto3_variants={k: {"MiB/s": [mib / m.seconds for m in v], "memory_mib": [m.memory_mib for m in v]}
                                               for k, v in variants.items()},
                               ours_runs={"MiB/s": [mib / m.seconds for m in ups]}, boto3_variant=raw_name))  # fmt: skip

        # Same endpoint: a server-side copy. Raw: one CopyObject, or client.copy (UploadPartCopy on threads); the faster counts.
        moves: list[Measure] = []
        copies: dict[str, list[Measure]] = {"copy_object": [], "client.copy": []}
        copy_req: dict[str, dict[str, int]] = {}
        for r in rounds:
            with Measure() as m:
                f = sync.set_tier(f, SetTierOptions(tier="COLD"))
            moves.append(m)
            move_req = ours_req.take()
            if r + 1 < len(rounds):
                f = sync.set_tier(f, SetTierOptions(tier="HOT"))
            ours_req.take()
            raw_req.take()
            with Measure() as m:
                client.copy_object(Bucket=cold, Key="raw/moved.bin", CopySource={"Bucket": hot, "Key": "raw/file.bin"})
                client.delete_object(Bucket=hot, Key="raw/file.bin")
            copies["copy_object"].append(m)
            copy_req["copy_object"] = raw_req.take()
            client.copy_object(Bucket=hot, Key="raw/file.bin", CopySource={"Bucket": cold, "Key": "raw/moved.bin"})
            raw_req.take()
            with Measure() as m:
                client.copy({"Bucket": hot, "Key": "raw/file.bin"}, cold, "raw/moved.bin", Config=transfer)
                client.delete_object(Bucket=hot, Key="raw/file.bin")
            copies["client.copy"].append(m)
            copy_req["client.copy"] = raw_req.take()
            client.copy_object(Bucket=hot, Key="raw/file.bin", CopySource={"Bucket": cold, "Key": "raw/moved.bin"})
        move = _merge(moves)
        copy_name, copy = _best({k: _merge(v) for k, v in copies.items()})
        b.results.append(entry(f"move {mib} MiB, same endpoint", "s", move.seconds, copy.seconds, target=1.1, op="<=",
                               memory={"ours": move.memory_mib, "boto3": copy.memory_mib}, memory_bound=("<", 16),
                               requests={"ours": move_req, "boto3": copy_req[copy_name]},
                               boto3_variants={k: {"s": [m.seconds for m in v], "memory_mib": [m.memory_mib for m in v]}
                                               for k, v in copies.items()},
                               ours_runs={"s": [m.seconds for m in moves]}, boto3_variant=copy_name))  # fmt: skip

    # Across endpoints: bytes flow through the client. Raw: get_object's stream into upload_fileobj.
    manager = point(b.tiers(hot, far, cold_endpoint=1))
    sync = manager.sync
    g = sync.upload(path, UploadOptions(filename=f"far-{mib}.bin"))
    ours_req = Requests().watch(*ours_clients(manager))
    crosses: list[Measure] = []
    cross_raws: list[Measure] = []
    for r in rounds:
        with Measure() as m:
            g = sync.set_tier(g, SetTierOptions(tier="COLD"))
        crosses.append(m)
        cross_req = ours_req.take()
        raw_req.take()
        with Measure() as m:
            body = client.get_object(Bucket=hot, Key="raw/file.bin")["Body"]
            other.upload_fileobj(body, far, "raw/far.bin", Config=transfer)
            client.delete_object(Bucket=hot, Key="raw/file.bin")
        cross_raws.append(m)
        cross_raw_req = raw_req.take()
        assert other.head_object(Bucket=far, Key=g.path)["ContentLength"] == mib * MiB
        if r + 1 < len(rounds):
            g = sync.set_tier(g, SetTierOptions(tier="HOT"))
            client.upload_file(str(path), hot, "raw/file.bin", Config=transfer)
        ours_req.take()
    cross, cross_raw = _merge(crosses), _merge(cross_raws)
    point_data["cross"] = {"ours": cross.memory_mib, "boto3": cross_raw.memory_mib}
    if full:
        b.results.append(entry(f"move {mib} MiB across endpoints", "MiB/s", mib / cross.seconds, mib / cross_raw.seconds, target=0.9,
                               memory={"ours": cross.memory_mib, "boto3": cross_raw.memory_mib}, memory_bound=("<", 64),
                               requests={"ours": cross_req, "boto3": cross_raw_req},
                               ours_runs={"MiB/s": [mib / m.seconds for m in crosses]},
                               boto3_runs={"MiB/s": [mib / m.seconds for m in cross_raws]}))  # fmt: skip
    path.unlink()
    return point_data


def case_memory_sweep(b: Bench) -> None:
    """Client memory growth against file size (upload from a file, cross-endpoint move), for the plot."""
    points = [p for p in b.sweeps.get("memory_points", [])]
    done = {p["mib"] for p in points}
    for mib in b.args.mem_sizes:
        if mib not in done:
            points.append(case_big(b, mib, full=False))
    b.sweeps["memory_by_size"] = sorted(points, key=lambda p: p["mib"])


# -- orphans ----------------------------------------------------------------------------------------


def case_orphans(b: Bench) -> None:
    """Orphan scans at growing sizes, 10% orphans, database included; memory must not grow with the size."""
    from django_s3strata import operations

    hot, cold = b.servers.bucket(), b.servers.bucket()
    manager = point(b.tiers(hot, cold))
    client = b.servers.client()
    clear_rows()
    seeded = 0
    memory: dict[int, float] = {}
    for n in sorted(b.args.orphans):
        keys = [f"private/{i:07d}-f.bin" for i in range(seeded, n)]
        seed_objects(client, hot, keys)
        seed_rows([k for i, k in enumerate(keys, start=seeded) if i % 10])
        seeded = n
        ours_req = Requests().watch(*ours_clients(manager))
        b.queries.take()
        with Measure() as ours:
            summary = operations.sweep_orphans("report", tier="HOT", older_than=0)
        counts, queries = ours_req.take(), b.queries.take()
        assert summary.found == len(range(0, n, 10)), summary
        raw_req = Requests().watch(client)

        def listing() -> int:
            return sum(page.get("KeyCount", 0) for page in client.get_paginator("list_objects_v2").paginate(Bucket=hot))

        with Measure() as raw:
            listed = listing()
        assert listed == n
        memory[n] = ours.memory_mib
        _orphans_through_core(b, manager, n, raw)
        b.results.append(entry(f"orphan scan, {n:,} objects, 10% orphans", "objects/s", n / ours.seconds, n / raw.seconds, target=0.9,
                               against="raw paginated listing", memory={"ours": ours.memory_mib, "boto3": raw.memory_mib},
                               requests={"ours": counts, "boto3": raw_req.take()}, queries={"ours": queries}))  # fmt: skip
    sizes = sorted(memory)
    if len(sizes) > 1:
        spread = max(memory.values()) - min(memory.values())
        b.results.append(entry(f"orphan scan memory, {sizes[0]:,} vs {sizes[-1]:,} objects", "MiB", spread, None, ratio=spread,
                               target=8, op="<=", against="same at both sizes (MiB apart)",
                               memory={"ours": memory[sizes[-1]]}, sizes={str(k): v for k, v in memory.items()}))  # fmt: skip
    clear_rows()


def _orphans_through_core(b: Bench, manager: Any, n: int, raw: Measure) -> None:
    """The core's list_orphan_objects over the same bucket: with the in-memory adapter and with the Django adapter."""
    from django_s3strata.core import FileManager, InMemoryAdapter, StorageTier
    from django_s3strata.models import PhysicalFile

    memory_adapter = InMemoryAdapter()
    for path in PhysicalFile.objects.values_list("path", flat=True).iterator(chunk_size=5000):
        memory_adapter.sync_adapter.create(StorageTier.HOT, path.rsplit("/", 1)[-1], path, None)
    faces = {"in-memory adapter": FileManager(manager.config, memory_adapter).sync, "Django adapter": manager.sync}
    for name, face in faces.items():
        with Measure() as ours:
            found = len(face.list_orphan_objects(tier="HOT"))
        assert found == len(range(0, n, 10)), (name, found)
        b.results.append(entry(f"orphan scan through the core, {name}, {n:,} objects", "objects/s", n / ours.seconds,
                               n / raw.seconds, target=0.9, against="raw paginated listing",
                               memory={"ours": ours.memory_mib, "boto3": raw.memory_mib},
                               memory_bound=("<=", raw.memory_mib + 8)))  # fmt: skip


# -- Django -----------------------------------------------------------------------------------------


class _Link:
    """A row as a django-storages or raw boto3 template sees it: ``url`` signed on access."""

    def __init__(self, row: Any, sign: Callable[[str], str]) -> None:
        self.row, self.filename, self._sign = row, row.filename, sign

    @property
    def url(self) -> str:
        return self._sign(self.row.path)


def case_django(b: Bench, rows: int = 100) -> None:
    """A 100-row PhysicalFile page rendering ``.url`` for each: queries, S3 requests, and the per-URL cost."""
    from django.db import connection
    from django.template import Context, Engine
    from django.test.utils import CaptureQueriesContext

    from django_s3strata.models import PhysicalFile

    hot, cold = b.servers.bucket(), b.servers.bucket()
    manager = point(b.tiers(hot, cold))
    client = b.servers.client()
    clear_rows()
    keys = [f"private/docs/{uuid.uuid4()}-{i}.txt" for i in range(rows)]
    seed_objects(client, hot, keys, b"page")
    seed_rows(keys)
    ours_req = Requests().watch(*ours_clients(manager))
    template = Engine().from_string('{% for f in files %}<a href="{{ f.url }}">{{ f.filename }}</a>\n{% endfor %}')

    def page() -> str:
        return template.render(Context({"files": PhysicalFile.objects.order_by("id")[:rows]}))

    with CaptureQueriesContext(connection) as ctx:
        rendered = page()
    s3_requests, queries = sum(ours_req.take().values()), len(ctx.captured_queries)
    urls = [html.unescape(u) for u in re.findall(r'href="([^"]+)"', rendered)]
    assert len(urls) == rows
    assert fetch(urls[-1]) == (200, b"page"), "a URL of the page must download its file"
    peer = peer_storage(b.servers, hot)
    peer_req = Requests().watch(peer.connection.meta.client)

    def sign(path: str) -> str:
        return client.generate_presigned_url("get_object", Params={"Bucket": hot, "Key": path}, ExpiresIn=3600)

    def page_with(signer: Callable[[str], str]) -> Callable[[], str]:
        return lambda: template.render(Context({"files": [_Link(r, signer) for r in PhysicalFile.objects.order_by("id")[:rows]]}))

    repeat = b.args.page_repeat
    ours_page = best_time(page, repeat) / rows
    peer_page = best_time(page_with(peer.url), repeat) / rows
    raw_page = best_time(page_with(sign), repeat) / rows
    fetched = list(PhysicalFile.objects.order_by("id")[:rows])
    ours_url = best_time(lambda: [f.url for f in fetched], repeat) / rows
    peer_url = best_time(lambda: [peer.url(f.path) for f in fetched], repeat) / rows
    raw_url = best_time(lambda: [sign(f.path) for f in fetched], repeat) / rows
    assert sum(peer_req.take().values()) == 0
    b.results.append(entry(f"Django: {rows}-row list rendering .url", "µs/URL", ours_url * 1e6, raw_url * 1e6, peer=peer_url * 1e6,
                           ratio=peer_url / ours_url, target=5, against="django-storages S3Storage.url() (their cost / ours)",
                           extra_ok=s3_requests == 0 and queries <= 3, s3_requests=s3_requests, page_queries=queries,
                           page_us_per_row={"ours": ours_page * 1e6, "boto3": raw_page * 1e6, "django-storages": peer_page * 1e6}))  # fmt: skip
    _plain_file_field_page(b, manager, rows, hot)
    clear_rows()


def _plain_file_field_page(b: Bench, manager: Any, rows: int, hot: str) -> None:
    """A page of rows with a plain FileField on S3StrataStorage, rendering ``.url``, with no prefetch call in the view."""
    from django.db import connection
    from django.template import Context, Engine
    from django.test.utils import CaptureQueriesContext

    from bench.pages.models import Attachment
    from django_s3strata.models import PhysicalFile
    from django_s3strata.storage import S3StrataStorage, clear_cache

    Attachment.objects.all().delete()
    paths = list(PhysicalFile.objects.order_by("id").values_list("path", flat=True)[:rows])
    Attachment.objects.bulk_create([Attachment(file=path.split("/", 1)[1]) for path in paths])  # the name is the key suffix
    assert isinstance(Attachment._meta.get_field("file").storage, S3StrataStorage)
    source = '{% for f in files %}<a href="{{ f.file.url }}">{{ f.file.name }}</a>\n{% endfor %}'
    template, raw_template = Engine().from_string(source), Engine().from_string(source.replace("f.file.", "f."))
    client = b.servers.client()

    def sign(path: str) -> str:
        return client.generate_presigned_url("get_object", Params={"Bucket": hot, "Key": path}, ExpiresIn=3600)

    def page() -> str:
        clear_cache()  # as at the start of each request: every page looks its files up anew
        return template.render(Context({"files": Attachment.objects.order_by("id")[:rows]}))

    def raw_page() -> str:
        # The same rows read the same way, each name signed by boto3: what the page costs without our lookup.
        links = [_Link(r, sign) for r in PhysicalFile.objects.order_by("id")[:rows]]
        return raw_template.render(Context({"files": links}))

    ours_req = Requests().watch(*ours_clients(manager))
    with CaptureQueriesContext(connection) as ctx:
        rendered = page()
    queries, s3_requests = len(ctx.captured_queries), sum(ours_req.take().values())
    urls = [html.unescape(u) for u in re.findall(r'href="([^"]+)"', rendered)]
    assert len(urls) == rows and fetch(urls[-1]) == (200, b"page"), "a URL of the page must download its file"
    assert len(re.findall(r'href="http', raw_page())) == rows, "the raw page must sign every row"
    raw = best_time(raw_page, b.args.page_repeat) / rows
    ours = best_time(page, b.args.page_repeat) / rows
    b.results.append(entry(f"Django: {rows}-row list, plain FileField on S3StrataStorage", "µs/row", ours * 1e6, raw * 1e6,
                           ratio=raw / ours, target=1, against="the same page signing with generate_presigned_url (their cost / ours)",
                           extra_ok=s3_requests == 0 and queries <= 3, s3_requests=s3_requests, page_queries=queries))  # fmt: skip
    Attachment.objects.all().delete()


# -- async under load -------------------------------------------------------------------------------


async def _ticking(work: Callable[[], Any]) -> tuple[float, int, float]:
    """Run ``work()`` while a 5 ms ticker records the largest gap beyond its sleep; return (stall ms, ticks, seconds)."""
    stop = asyncio.Event()

    async def ticker() -> tuple[float, int]:
        worst, ticks = 0.0, 0
        while not stop.is_set():
            start = time.perf_counter()
            await asyncio.sleep(0.005)
            worst = max(worst, time.perf_counter() - start - 0.005)
            ticks += 1
        return worst, ticks

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    started = time.perf_counter()
    await work()
    seconds = time.perf_counter() - started
    stop.set()
    worst, ticks = await task
    return worst * 1000, ticks, seconds


def case_async_load(b: Bench) -> None:
    """The event loop keeps ticking while 20 uploads and a cross-endpoint move run through the async API."""
    from concurrent.futures import ThreadPoolExecutor

    from asgiref.sync import sync_to_async
    from boto3.s3.transfer import TransferConfig
    from django.db import connections

    from django_s3strata.core import SetTierOptions, UploadOptions

    hot, far = b.servers.bucket(0), b.servers.bucket(1)
    manager = point(b.tiers(hot, far, cold_endpoint=1))
    move_mib = min(max(b.args.big_mib), 64)
    path = b.data_dir / "async-move.bin"
    make_file(path, move_mib)
    f = manager.sync.upload(path, UploadOptions(filename="move.bin"))
    payload = os.urandom(b.args.async_mib * MiB)
    uploads = 20

    async def ours_work() -> None:
        await asyncio.gather(
            *(manager.upload(payload, UploadOptions(filename=f"load{i}.bin")) for i in range(uploads)),
            manager.set_tier(f, SetTierOptions(tier="COLD")),
        )
        await sync_to_async(connections.close_all)()

    settle()
    ours_stall, ours_ticks, ours_s = asyncio.run(_ticking(ours_work))
    client, other = b.servers.client(0), b.servers.client(1)
    client.upload_file(str(path), hot, "raw/move.bin")
    executor = ThreadPoolExecutor(THREADS)

    async def raw_work() -> None:
        loop = asyncio.get_running_loop()

        def stream() -> None:
            body = client.get_object(Bucket=hot, Key="raw/move.bin")["Body"]
            other.upload_fileobj(body, far, "raw/move.bin", Config=TransferConfig())

        await asyncio.gather(
            *(loop.run_in_executor(executor, lambda i=i: client.put_object(Bucket=hot, Key=f"raw/{i}", Body=payload)) for i in range(uploads)),
            loop.run_in_executor(executor, stream),
        )  # fmt: skip

    raw_stall, raw_ticks, raw_s = asyncio.run(_ticking(raw_work))
    executor.shutdown()
    path.unlink()
    b.results.append(entry(f"async API under load: {uploads} uploads of {b.args.async_mib} MiB + a {move_mib} MiB cross-endpoint move",
                           "ms stall", ours_stall, raw_stall, ratio=ours_stall, target=50, op="<=",
                           against="largest event-loop stall (ms), bound 50 ms",
                           ticks={"ours": ours_ticks, "boto3": raw_ticks}, seconds={"ours": ours_s, "boto3": raw_s}))  # fmt: skip
