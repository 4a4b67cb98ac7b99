"""What every engine run shares: its JSON-able summary, its progress callback, its worker threads' connections."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from django.db import connections

__all__ = ["Progress", "RunSummary", "close_thread_connections", "no_progress"]

#: Called with how many more items a run has handled (a command's progress line).
Progress = Callable[[int], None]


def no_progress(n: int) -> None:
    """Report nothing (the default progress callback)."""
    return None


class RunSummary:
    """A run's result, JSON-serialisable through ``as_dict`` (what tasks return and ``--json`` prints)."""

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict."""
        fields: dict[str, Any] = asdict(self)  # type: ignore[call-overload]
        return fields


def close_thread_connections(pool: ThreadPoolExecutor, size: int) -> None:
    """Close the database connections the pool's threads opened (Django keeps one per thread).

    The barrier makes each of the ``size`` threads take exactly one of the closing tasks.
    """
    barrier = threading.Barrier(size)

    def close(_: int) -> None:
        barrier.wait(timeout=30)
        connections.close_all()

    list(pool.map(close, range(size)))
