"""The async API never blocks the event loop, and the sync face needs none."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from django_s3strata.core import FileManager, InMemoryAdapter, UploadOptions
from tests.conftest import make_env
from tests.s3server import MotoS3Server

DELAY = 1.0


@pytest.fixture
def slow_server() -> Iterator[MotoS3Server]:
    server = MotoS3Server(delay=DELAY).start()
    yield server
    server.stop()


def test_concurrent_uploads_overlap_and_the_loop_keeps_ticking(slow_server: MotoS3Server) -> None:
    env = make_env("shared", slow_server, slow_server)
    fm = FileManager(env.config, InMemoryAdapter())
    slow_server.middleware.max_in_flight = 0
    gaps: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async def main() -> float:
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(stop))
        start = time.perf_counter()
        files = await asyncio.gather(*(fm.upload(f"file {i}".encode(), UploadOptions(filename=f"{i}.txt")) for i in range(20)))
        elapsed = time.perf_counter() - start
        stop.set()
        await tick
        assert len({f.path for f in files}) == 20
        return elapsed

    elapsed = asyncio.run(main())
    # Serial uploads would have one request in flight at a time; the pool runs up to 16.
    assert slow_server.middleware.max_in_flight >= 10
    assert len(gaps) > elapsed / 0.01 / 3
    assert max(gaps) < 0.8 * DELAY, max(gaps)  # a blocking call on the loop would stall it for a whole DELAY
    assert sorted(env.keys("HOT")) == sorted(f.path for f in fm.adapter.files.values())


def test_large_bodies_go_on_the_bulk_threads_small_ones_on_all(slow_server: MotoS3Server) -> None:
    # Hashing and signing large bodies on many threads at once stalls the loop: they get their own few threads.
    env = make_env("shared", slow_server, slow_server, async_bulk_concurrency=3)
    fm = FileManager(env.config, InMemoryAdapter())
    big = b"b" * (1024 * 1024 + 1)

    async def burst(body: bytes, n: int) -> None:
        slow_server.middleware.max_in_flight = 0
        await asyncio.gather(*(fm.upload(body, UploadOptions(filename=f"{i}.bin")) for i in range(n)))

    asyncio.run(burst(big, 6))
    assert slow_server.middleware.max_in_flight == 3
    asyncio.run(burst(b"small", 12))
    assert slow_server.middleware.max_in_flight >= 10
    # Every body landed (each read waits out the server's delay: one of each kind is enough).
    files = sorted(fm.adapter.files.values(), key=lambda f: f.id)
    assert sorted(env.keys("HOT")) == sorted(f.path for f in files) and len(files) == 18
    assert (env.read("HOT", files[0].path), env.read("HOT", files[-1].path)) == (big, b"small")


def test_get_url_needs_no_network_and_no_thread(slow_server: MotoS3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env("shared", slow_server, slow_server)
    fm = FileManager(env.config, InMemoryAdapter())
    f = fm.sync.upload(b"x")
    before = slow_server.middleware.requests

    def no_threads(*args: object, **kwargs: object) -> None:
        raise AssertionError("get_url used the thread pool")

    monkeypatch.setattr(asyncio.BaseEventLoop, "run_in_executor", no_threads)
    for _ in range(20):
        assert "X-Amz-Signature" in fm.sync.get_url(f)
        assert "X-Amz-Signature" in asyncio.run(fm.get_url(f))
    assert slow_server.middleware.requests == before
