"""Large objects stream: the test process's peak RSS grows by a bounded amount whatever the size.

The S3 servers run in their own processes here, so the kernel's high-water mark of this
process (VmHWM, reset through /proc/self/clear_refs) measures the client alone.
"""

from __future__ import annotations

import contextlib
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from django_s3strata.core import (
    FileManager,
    InMemoryAdapter,
    S3StrataConfig,
    S3TierConfig,
    SetTierOptions,
    StorageTier,
    UploadOptions,
)
from tests.s3server import ACCESS_KEY, SECRET_KEY

MiB = 1024 * 1024
SIZE = 100 * MiB
BOUND = 64 * MiB

pytestmark = pytest.mark.skipif(not pathlib.Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")


def _status(field: str) -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


class PeakRSS:
    """Measure the growth of this process's peak RSS over a block."""

    def __enter__(self) -> PeakRSS:
        pathlib.Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        self.base = _status("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        self.growth = _status("VmHWM") - self.base


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def servers() -> Iterator[list[int]]:
    ports = [_free_port(), _free_port()]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(p)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for p in ports
    ]
    try:
        for port in ports:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


@pytest.fixture
def manager(servers: list[int]) -> FileManager:
    hot_port, cold_port = servers
    cfg = S3StrataConfig(
        hot=S3TierConfig("127.0.0.1", ACCESS_KEY, SECRET_KEY, "mem-hot", port=hot_port, use_ssl=False),
        cold=S3TierConfig("127.0.0.1", ACCESS_KEY, SECRET_KEY, "mem-cold", port=cold_port, use_ssl=False),
    )
    fm = FileManager(cfg, InMemoryAdapter())
    for tier in StorageTier:
        client: Any = fm.objectstore.client(tier)
        bucket = fm.objectstore.tier(tier).bucket
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=bucket)
    return fm


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("big") / "big.bin"
    block = bytes(range(256)) * (4 * 4096)  # 4 MiB
    with path.open("wb") as fh:
        for _ in range(SIZE // len(block)):
            fh.write(block)
    return path


def test_upload_from_file_and_cross_endpoint_move_stay_bounded(manager: FileManager, big_file: pathlib.Path) -> None:
    fm = manager.sync
    with PeakRSS() as upload:
        f = fm.upload(big_file, UploadOptions(filename="big.bin"))
    with PeakRSS() as move:
        cold = fm.set_tier(f, SetTierOptions(tier="COLD"))
    print(f"peak RSS growth: upload {upload.growth / MiB:.1f} MiB, move {move.growth / MiB:.1f} MiB")
    assert upload.growth < BOUND, f"upload grew peak RSS by {upload.growth / MiB:.1f} MiB"
    assert move.growth < BOUND, f"cross-endpoint move grew peak RSS by {move.growth / MiB:.1f} MiB"
    info = manager.objectstore.head(StorageTier.COLD, cold.path)
    assert info is not None and info.size == SIZE
    assert manager.objectstore.head(StorageTier.HOT, f.path) is None
    with fm.open(cold) as stream:
        stream.seek(SIZE - 4096)
        assert stream.read() == big_file.read_bytes()[-4096:]
