"""Steps and their drivers: each operation is a generator that yields the I/O it needs.

An operation yields an ``S3Call`` (blocking S3 I/O), a ``DBCall`` (an adapter method) or a
``Sleep``, and receives each one's result (or its exception, thrown in). ``drive_sync`` runs
the steps inline with a sync adapter; ``drive_async`` runs S3 calls on a thread pool and awaits
the async adapter, so nothing blocks the event loop. Both close the generator when they stop
early, so a cancelled or interrupted operation runs no further step.

Database steps are built by ``db(SyncStorageAdapter.<method>, ...)``: mypy checks the method's
name, its arguments and its result type against the adapter contract.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Generator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from .adapters import StorageAdapter, SyncStorageAdapter

__all__ = ["BULK_BYTES", "DBCall", "Op", "S3Call", "Sleep", "db", "drive_async", "drive_sync", "now"]

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")

#: A step that moves more bytes than this through the client (an upload, a streamed copy) is "bulk".
BULK_BYTES = 1024 * 1024


@dataclass
class S3Call:
    """A step: call ``fn(*args, **kwargs)`` (blocking S3 I/O); ``bulk`` when it moves many bytes through the client."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    bulk: bool = False


@dataclass
class DBCall:
    """A step: call the adapter's ``method(*args, **kwargs)`` (awaited on the async face)."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sleep:
    """A step: wait ``seconds`` (asyncio.sleep on the async face, time.sleep on the sync one)."""

    seconds: float


Step = S3Call | DBCall | Sleep
Op = Generator[Step, Any, T]


def db(method: Callable[Concatenate[SyncStorageAdapter, P], R], *args: P.args, **kwargs: P.kwargs) -> Op[R]:
    """Yield one adapter call, named by the contract's own method, and return its result."""
    result = yield DBCall(method.__name__, args, kwargs)
    return cast(R, result)


def now() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


def _advance(op: Op[Any], value: Any, error: BaseException | None) -> tuple[bool, Any]:
    """Resume ``op`` with a step's result or error; return (True, its result) or (False, its next step)."""
    try:
        return False, op.throw(error) if error is not None else op.send(value)
    except StopIteration as stop:
        return True, stop.value


def drive_sync(op: Op[T], adapter: SyncStorageAdapter) -> T:
    """Run ``op`` to its end on this thread with ``adapter``."""

    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            done, step = _advance(op, value, error)
            if done:
                return cast(T, step)
            value, error = None, None
            try:
                if isinstance(step, S3Call):
                    value = step.fn(*step.args, **step.kwargs)
                elif isinstance(step, Sleep):
                    time.sleep(step.seconds)
                else:
                    value = getattr(adapter, step.method)(*step.args, **step.kwargs)
            except Exception as exc:
                error = exc
    finally:
        # Interrupted (KeyboardInterrupt, SystemExit): close the generator; no cleanup step runs.
        op.close()


async def drive_async(op: Op[T], adapter: StorageAdapter, pool: Callable[[bool], Executor]) -> T:
    """Run ``op`` to its end: S3 calls on ``pool(bulk)``, adapter calls awaited, sleeps on the loop."""
    loop = asyncio.get_running_loop()
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            done, step = _advance(op, value, error)
            if done:
                return cast(T, step)
            value, error = None, None
            try:
                if isinstance(step, S3Call):
                    call = functools.partial(step.fn, *step.args, **step.kwargs)
                    value = await loop.run_in_executor(pool(step.bulk), call)
                elif isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                else:
                    value = await getattr(adapter, step.method)(*step.args, **step.kwargs)
            except Exception as exc:
                error = exc
    finally:
        # Stopped early (the loop cancelled this task): no cleanup step runs, claims expire, a copy is an orphan.
        op.close()
