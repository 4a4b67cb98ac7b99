"""What the suite measures: wall time, this process's own peak memory, S3 requests and SQL queries."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import pathlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

MiB = 1024 * 1024

try:
    _libc: Any = ctypes.CDLL("libc.so.6")
except OSError:  # not glibc: no malloc_trim
    _libc = None


def _status(field: str) -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def settle() -> None:
    """Collect garbage and hand freed heap back to the kernel, so a step starts from the idle process."""
    gc.collect()
    if _libc is not None:
        _libc.malloc_trim(0)


class Measure:
    """Wall time, this process's CPU time (all its threads) and the growth of its peak RSS over its idle RSS.

    The peak is the kernel's per-process high-water mark (``VmHWM``), reset before the step by
    writing 5 to ``/proc/self/clear_refs``; ``ru_maxrss`` cannot be reset and counts the parent's.
    """

    seconds: float
    cpu_seconds: float
    memory_mib: float

    def __enter__(self) -> Measure:
        settle()
        with contextlib.suppress(OSError):
            pathlib.Path("/proc/self/clear_refs").write_text("5")
        self.base = _status("VmRSS")
        self.cpu_start = time.process_time()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.cpu_start
        self.memory_mib = max(0, _status("VmHWM") - self.base) / MiB


def timed(fn: Callable[[], Any]) -> Measure:
    """Run ``fn`` once under a Measure and return it."""
    with Measure() as m:
        fn()
    return m


def best_time(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Return the best wall time of ``repeat`` runs of ``fn`` (for CPU-only cases: the least disturbed run)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


class Requests:
    """Count the HTTP requests boto3 clients send, per S3 operation (a ``before-send`` event hook)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._id = f"bench-requests-{id(self)}"

    def watch(self, *clients: Any) -> Requests:
        """Count the requests of ``clients`` (each hooked once, however often it is watched).

        botocore keeps one hook per ``unique_id`` on a client: an ``id()`` set would skip a new
        client that happens to reuse a collected one's address.
        """
        for client in clients:
            client.meta.events.register("before-send.s3", self._count, unique_id=self._id)
        return self

    def _count(self, event_name: str = "", **kwargs: Any) -> None:
        with self._lock:
            self.counts[event_name.rsplit(".", 1)[-1]] += 1

    def take(self) -> dict[str, int]:
        """Return the counts since the last ``take`` and start again from zero."""
        with self._lock:
            counts, self.counts = dict(self.counts), Counter()
        return counts


class Latency:
    """Hold each HTTP request of the watched boto3 clients ``seconds`` before it is sent (a ``before-send`` hook).

    A distant S3 as the client sees it: the calling thread waits, as it would for the round
    trip, and requests on other threads overlap. Every client of every side compared is
    watched by the same object, so all wait alike; ``seconds`` may change between timings.
    """

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self._id = f"bench-latency-{id(self)}"

    def watch(self, *clients: Any) -> Latency:
        """Delay the requests of ``clients`` (each hooked once, however often it is watched)."""
        for client in clients:
            client.meta.events.register("before-send.s3", self._wait, unique_id=self._id)
        return self

    def _wait(self, **kwargs: Any) -> None:
        if self.seconds > 0:
            time.sleep(self.seconds)  # returns None: botocore then sends the request as usual


class Queries:
    """Count SQL queries on every thread's connection (an execute wrapper added as each connects).

    ``arrays`` counts those that bind a list as one array parameter (``unnest(``), so a case can
    tell which form of ``IN`` ran.
    """

    def __init__(self) -> None:
        self.count = 0
        self.arrays = 0
        self._lock = threading.Lock()

    def install(self) -> None:
        from django.db import connection
        from django.db.backends.signals import connection_created

        connection_created.connect(self._on_connect, weak=False)
        connection.execute_wrappers.append(self._wrapper)

    def _on_connect(self, sender: Any, connection: Any, **kwargs: Any) -> None:
        if self._wrapper not in connection.execute_wrappers:
            connection.execute_wrappers.append(self._wrapper)

    def _wrapper(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        array = "unnest(" in sql
        with self._lock:
            self.count += 1
            self.arrays += array
        return execute(sql, params, many, context)

    def take(self) -> int:
        """Return the queries since the last ``take`` and start again from zero."""
        with self._lock:
            count, self.count = self.count, 0
        return count

    def take_arrays(self) -> int:
        """Return the queries with an array parameter since the last ``take_arrays``, and start again from zero."""
        with self._lock:
            arrays, self.arrays = self.arrays, 0
        return arrays


@contextlib.contextmanager
def pool(size: int) -> Iterator[ThreadPoolExecutor]:
    """A thread pool whose threads close their Django database connections before it shuts down."""
    with ThreadPoolExecutor(size, thread_name_prefix="bench") as executor:
        try:
            yield executor
        finally:
            close_thread_connections(executor, size)


def close_thread_connections(executor: ThreadPoolExecutor, size: int) -> None:
    """Have each of the ``size`` threads close the connections Django opened in it (one per thread)."""
    from django.db import connections

    barrier = threading.Barrier(size)

    def close(_: int) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=30)
        connections.close_all()

    list(executor.map(close, range(size)))
