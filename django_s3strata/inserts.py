"""One INSERT for many async uploads' rows.

Django's async ORM runs every query on one thread, so sixteen tasks that each finish an upload
would pay sixteen INSERTs and sixteen commits one after another. Here the rows waiting when the
ORM's thread is free go in one multi-row ``bulk_create``; rows that arrive meanwhile wait for the
next one. A task alone waits for nobody. With 20 ms of S3 latency per request, 500 gathered
uploads ran about 25% faster than with one ``create`` per row (docs/performance.md, "Special
paths"); a hand-built prepared INSERT for single rows measured no faster and is gone.

Semantics do not change: a row is committed when ``create`` returns, each caller gets its own
record or its own error (a batch that fails is retried row by row), and each caller sends its
own signals. Inside a transaction, on a database that cannot return ids from a bulk insert, or
with a ``pre_save``/``post_save`` receiver on PhysicalFile (which ``bulk_create`` does not send),
each row gets Django's plain ``create``.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import router, transaction
from django.db.models.signals import post_save, pre_save

from .models import PhysicalFile

__all__ = ["IN_TRANSACTION", "AsyncInserts", "insert_rows"]

#: Set on a record inserted inside an open transaction: its signals must wait for that commit.
IN_TRANSACTION = "_s3strata_in_transaction"

logger = logging.getLogger(__name__)

Outcome = PhysicalFile | BaseException


def _save_signals() -> bool:
    return pre_save.has_listeners(PhysicalFile) or post_save.has_listeners(PhysicalFile)


def _combinable(using: str) -> bool:
    """True when several callers' rows for ``using`` may share one INSERT."""
    conn = transaction.get_connection(using)
    if conn.in_atomic_block or not conn.get_autocommit():
        return False  # the row must belong to the caller's own transaction
    if not conn.features.can_return_rows_from_bulk_insert:
        return False
    return not _save_signals()


def insert_rows(rows: list[dict[str, Any]]) -> list[Outcome]:
    """Insert ``rows`` (field values) and return each one's record or error, in order."""
    if len(rows) > 1 and _combinable(router.db_for_write(PhysicalFile)):
        try:
            return list(PhysicalFile.objects.bulk_create([PhysicalFile(**row) for row in rows]))
        except Exception:
            # One bad row fails the statement: give each row its own INSERT and its own outcome.
            logger.debug("s3strata: a shared INSERT of %d rows failed; inserting them one by one.", len(rows), exc_info=True)
    out: list[Outcome] = []
    conn = transaction.get_connection(router.db_for_write(PhysicalFile))
    # TestCase's own atomic blocks stand for autocommit, as in the adapter's run_after_commit.
    in_transaction = conn.in_atomic_block and not all(getattr(b, "_from_testcase", False) for b in conn.atomic_blocks)
    for row in rows:
        try:
            record = PhysicalFile.objects.create(**row)
            setattr(record, IN_TRANSACTION, in_transaction)
            out.append(record)
        except Exception as exc:
            out.append(exc)
    return out


class _LoopState:
    def __init__(self) -> None:
        self.waiting: list[tuple[dict[str, Any], asyncio.Future[PhysicalFile]]] = []
        self.drain: asyncio.Task[None] | None = None


class AsyncInserts:
    """Combines ``acreate`` calls from many tasks of one event loop into one INSERT on the ORM's thread."""

    def __init__(self, insert: Callable[[list[dict[str, Any]]], list[Outcome]] = insert_rows) -> None:
        self._insert = sync_to_async(insert)
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()

    async def create(self, row: dict[str, Any]) -> PhysicalFile:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _LoopState()
        future: asyncio.Future[PhysicalFile] = loop.create_future()
        state.waiting.append((row, future))
        if state.drain is None:
            state.drain = loop.create_task(self._drain(state))
        # A cancelled caller's row may still be inserted: it points at the object the upload stored.
        return await future

    async def _drain(self, state: _LoopState) -> None:
        batch: list[tuple[dict[str, Any], asyncio.Future[PhysicalFile]]] = []
        try:
            while state.waiting:
                batch, state.waiting = state.waiting, []
                try:
                    outcomes = await self._insert([row for row, _ in batch])
                except Exception as exc:
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            state.drain = None
            # The loop is cancelling this task (it is closing): nobody is left waiting for an answer.
            for _, future in [*batch, *state.waiting]:
                if not future.done():
                    future.cancel()
