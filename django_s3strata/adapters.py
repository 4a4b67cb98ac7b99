"""DjangoORMAdapter: the core's StorageAdapter on the PhysicalFile model, written once (sync) with an async face.

The adapter writes rows and returns records; what each write changed goes to ``events.py``,
which decides the signals and the cache notices. Every query goes to the routed database.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections, router, transaction
from django.db.models import Case, F, Q, TextField, Value, When
from django.utils import timezone

from . import events
from .core.adapters import AdapterFeatures, ClaimKey, Move, SyncBackedAdapter, SyncStorageAdapter
from .core.types import UNSET, FileId, ObjectInfo, RestoreFields, StorageTier
from .events import Change
from .inserts import IN_TRANSACTION, AsyncInserts
from .models import RESTORE_FIELDS, ObjectClaim, PhysicalFile
from .querysets import config_q, in_array

__all__ = ["DjangoORMAdapter", "DjangoORMSyncAdapter", "now_ms"]

T = TypeVar("T")


def now_ms() -> datetime:
    """Return the current UTC time at millisecond precision (what Prisma stores)."""
    now = timezone.now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _ms(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    return value


def _tier(value: Any) -> str:
    return StorageTier(value).value


def _new_row(
    storage_tier: Any, filename: str, path: str, hot_until: Any, stored: ObjectInfo | None = None, config: str | None = None
) -> dict[str, Any]:
    # Both timestamps explicitly: a table shared with Prisma has no database default for updated_at.
    now = now_ms()
    row = {
        "storage_tier": _tier(storage_tier),
        "filename": filename,
        "path": path,
        "hot_until": _ms(hot_until),
        "created_at": now,
        "updated_at": now,
    }
    if config is not None:
        row["config"] = config  # left out for "default": its rows keep NULL, as s3strata-ts writes them
    if stored is not None:
        row.update(size=stored.size, etag=stored.etag, content_type=stored.content_type)
    return row


def _changes(storage_tier: Any, path: Any, hot_until: Any, now: datetime | None = None) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if storage_tier is not UNSET:
        changes["storage_tier"] = _tier(storage_tier)
    if path is not UNSET:
        changes["path"] = path
    if hot_until is not UNSET:
        changes["hot_until"] = _ms(hot_until)
    changes["updated_at"] = now or now_ms()
    if "storage_tier" in changes:
        # A committed tier move ends any archival claim on the row.
        changes["lease_owner"] = changes["lease_until"] = None
    if "storage_tier" in changes or "path" in changes:
        # And any restore: a new object, written with its tier's class (a visibility move in an archive
        # class archives the file again; the restored copy was the old key's).
        changes.update(dict.fromkeys(RESTORE_FIELDS))
    return changes


def _applied(before: PhysicalFile, changes: dict[str, Any]) -> PhysicalFile:
    """Return a copy of ``before`` with ``changes`` applied (what the row now holds, without reading it)."""
    after = copy.copy(before)
    for name, value in changes.items():
        setattr(after, name, value)
    return after


def _existing_paths(storage_tier: Any, paths: list[str]) -> Any:
    """Return the paths among ``paths`` that have a row in ``storage_tier``: one query per listing page.

    Rows of any configuration count: a row naming the key keeps the object, whichever bucket pair
    it records (the checks refuse two configurations on one bucket, so none should).
    """
    return PhysicalFile.objects.filter(in_array("path", paths, "text"), storage_tier=_tier(storage_tier)).values_list(
        "path", flat=True
    )


def _where(id: FileId, expected_tier: Any, expected_path: str) -> Any:
    return PhysicalFile.objects.filter(pk=id, storage_tier=_tier(expected_tier), path=expected_path)


def claim_keys(owner: str, keys: list[ClaimKey], seconds: float) -> dict[ClaimKey, str]:
    """Claim the free, expired or already-``owner``'s keys for ``owner``; return the others' holders.

    Committed at once (outside a transaction) so that other writers see the claim: on PostgreSQL
    and SQLite one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING`` takes the free,
    expired and own keys; elsewhere an UPDATE takes over expired and own claims and an INSERT
    adds the missing ones (a concurrent insert of the same key loses to the primary key). The
    holders of the rest are read back only when there are any. A key whose claim vanished in
    between (its holder released it) is claimed again, never counted as ``owner``'s without a row.
    Keys are taken in digest order, so two writers claiming the same keys cannot deadlock.
    """
    if not keys:
        return {}
    using = router.db_for_write(ObjectClaim)
    now = timezone.now()
    until = now + timedelta(seconds=seconds)
    wanted = dict(sorted((ObjectClaim.digest_of(_tier(t), k), (StorageTier(t), k)) for t, k in keys))
    conn = connections[using]
    claims = ObjectClaim.objects.using(using)
    held: dict[ClaimKey, str] = {}
    for _ in range(3):
        if conn.vendor in ("postgresql", "sqlite") and conn.features.can_return_columns_from_insert:
            mine = _upsert_claims(conn, owner, wanted, now, until)
        else:
            claims.filter(in_array("digest", list(wanted), "text")).filter(Q(owner=owner) | Q(until__lt=now)).update(
                owner=owner, until=until
            )
            claims.bulk_create(
                [ObjectClaim(digest=d, storage_tier=t.value, key=k, owner=owner, until=until) for d, (t, k) in wanted.items()],
                ignore_conflicts=True,
            )
            mine = set()
        others = [d for d in wanted if d not in mine]
        if not others:
            return held
        rows = dict(claims.filter(in_array("digest", others, "text")).values_list("digest", "owner"))
        held.update((wanted[d], o) for d, o in rows.items() if o != owner)
        # No row at all: released between the two statements. Free now: claim it again.
        wanted = {d: wanted[d] for d in others if d not in rows}
        if not wanted:
            return held
    held.update((key, "a writer that just released it") for key in wanted.values())
    return held


def _upsert_claims(conn: Any, owner: str, wanted: dict[str, ClaimKey], now: datetime, until: datetime) -> set[str]:
    """Take the claims in one statement per 500 keys; return the digests now ``owner``'s."""
    meta = ObjectClaim._meta
    q = conn.ops.quote_name
    table = q(meta.db_table)
    cols = ", ".join(q(meta.get_field(f).column) for f in ("digest", "storage_tier", "key", "owner", "until"))
    owner_col, until_col, digest_col = (q(meta.get_field(f).column) for f in ("owner", "until", "digest"))
    stamp = conn.ops.adapt_datetimefield_value
    mine: set[str] = set()
    items = list(wanted.items())
    with conn.cursor() as cursor:
        for start in range(0, len(items), 500):
            chunk = items[start : start + 500]
            rows = ", ".join(["(%s, %s, %s, %s, %s)"] * len(chunk))
            params: list[Any] = []
            for digest, (tier, key) in chunk:
                params += [digest, tier.value, key, owner, stamp(until)]
            params.append(stamp(now))
            # Every name is the model's own, quoted; every value is a parameter.
            cursor.execute(
                f"INSERT INTO {table} ({cols}) VALUES {rows} ON CONFLICT ({digest_col}) DO UPDATE "  # noqa: S608
                f"SET {owner_col} = excluded.{owner_col}, {until_col} = excluded.{until_col} "
                f"WHERE {table}.{owner_col} = excluded.{owner_col} OR {table}.{until_col} < %s RETURNING {digest_col}",
                params,
            )
            mine.update(row[0] for row in cursor.fetchall())
    return mine


def release_keys(owner: str, keys: list[ClaimKey]) -> None:
    """Delete ``owner``'s claims on ``keys``: one DELETE per 500 keys, committed at once."""
    if not keys:
        return
    digests = [ObjectClaim.digest_of(_tier(t), k) for t, k in keys]
    conn = connections[router.db_for_write(ObjectClaim)]
    meta = ObjectClaim._meta
    q = conn.ops.quote_name
    table, owner_col, digest_col = q(meta.db_table), q(meta.get_field("owner").column), q(meta.get_field("digest").column)
    with conn.cursor() as cursor:
        for start in range(0, len(digests), 500):
            chunk = digests[start : start + 500]
            # A plain DELETE: QuerySet.delete() would wrap it in a transaction of its own (two more round trips).
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"DELETE FROM {table} WHERE {owner_col} = %s AND {digest_col} IN ({marks})", [owner, *chunk])  # noqa: S608


def delete_row(record: PhysicalFile, using: str) -> bool:
    """Delete ``record``'s row with one plain DELETE, without Django's Collector; return True if it went.

    The Collector would set to NULL (or cascade to) the rows referencing the file that it finds;
    a reference made after the caller's last check would be lost that way. Without it, such a
    reference fails the foreign key instead: the caller's transaction rolls back and the file stays.
    """
    conn = connections[using]
    meta = PhysicalFile._meta
    q = conn.ops.quote_name
    with conn.cursor() as cursor:
        # The model's own quoted names; the id is a parameter.
        cursor.execute(f"DELETE FROM {q(meta.db_table)} WHERE {q(meta.pk.column)} = %s", [record.pk])  # noqa: S608
        gone = cursor.rowcount > 0
    if gone:
        events.publish([Change(record, None)])
    return gone


class DjangoORMSyncAdapter(SyncStorageAdapter):
    """Records as PhysicalFile rows: plain ORM calls on the routed database, the one implementation.

    ``config`` names the ``S3STRATA`` configuration whose rows this adapter writes and finds (None:
    "default", whose rows hold NULL); a row found by id is used whatever its configuration.
    """

    features = AdapterFeatures(
        find_existing_paths=True,
        create_stored=True,
        update_if=True,
        update_many_if=True,
        claims=True,
        run_after_commit=True,
        records_etag=True,
        record_restore=True,
    )

    def __init__(self, config: str | None = None) -> None:
        self.config = None if config == "default" else config

    def create(self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None) -> PhysicalFile:
        return self._insert(_new_row(storage_tier, filename, path, hot_until, config=self.config))

    def create_stored(
        self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None, stored: ObjectInfo
    ) -> PhysicalFile:
        return self._insert(_new_row(storage_tier, filename, path, hot_until, stored, self.config))

    @staticmethod
    def _insert(row: dict[str, Any]) -> PhysicalFile:
        # Django's own INSERT: a hand-built prepared one measured no faster with real S3 latency
        # (docs/performance.md, "Special paths").
        record = PhysicalFile.objects.create(**row)
        events.publish([Change(None, record)])
        return record

    def find_by_id(self, id: FileId) -> PhysicalFile | None:
        return PhysicalFile.objects.filter(pk=id).first()

    def update(self, id: FileId, storage_tier: Any = UNSET, path: Any = UNSET, hot_until: Any = UNSET) -> PhysicalFile:
        changes = _changes(storage_tier, path, hot_until)
        with transaction.atomic(using=router.db_for_write(PhysicalFile)):
            before = PhysicalFile.objects.select_for_update().get(pk=id)
            PhysicalFile.objects.filter(pk=id).update(**changes)
            after = PhysicalFile.objects.get(pk=id)
            events.publish([Change(before, after)])
        return after

    def update_if(
        self,
        id: FileId,
        expected_tier: StorageTier,
        expected_path: str,
        storage_tier: Any = UNSET,
        path: Any = UNSET,
        hot_until: Any = UNSET,
        etag: Any = UNSET,
    ) -> PhysicalFile | None:
        before = _where(id, expected_tier, expected_path).first()
        if before is None:
            return None
        changes = _changes(storage_tier, path, hot_until)
        if etag is not UNSET:
            changes["etag"] = etag  # records_etag: a move's copy's ETag (through update_many_if)
        # The UPDATE re-checks the location, so of two racing moves exactly one commits.
        if not _where(id, expected_tier, expected_path).update(**changes):
            return None
        after = _applied(before, changes)
        events.publish([Change(before, after)])
        return after

    def update_many_if(self, moves: list[Move]) -> list[PhysicalFile | None]:
        using = router.db_for_write(PhysicalFile)
        if not connections[using].features.has_select_for_update:
            return [self.update_if(r.id, r.storage_tier, r.path, **changes) for r, changes in moves]
        now = now_ms()
        out: list[PhysicalFile | None] = []
        changed: list[Change] = []
        groups: dict[tuple[tuple[str, Any], ...], list[Any]] = defaultdict(list)
        etags: dict[Any, str | None] = {}
        with transaction.atomic(using=using):
            # The rows stay locked until the commit, so checking their location here is race-free;
            # only the location is read back: the records in hand are the rest.
            pks = [r.pk for r, _ in moves]
            where = PhysicalFile.objects.select_for_update().filter(pk__in=pks)
            now_at = {
                pk: (tier, path, until) for pk, tier, path, until in where.values_list("pk", "storage_tier", "path", "hot_until")
            }
            for record, given in moves:
                found = now_at.get(record.pk)
                if found is None or found[:2] != (_tier(record.storage_tier), record.path):
                    out.append(None)
                    continue
                changes = _changes(*(given.get(k, UNSET) for k in ("storage_tier", "path", "hot_until")), now=now)
                before = _applied(record, {"hot_until": found[2]})
                after = _applied(before, {**changes, **({"etag": given["etag"]} if "etag" in given else {})})
                out.append(after)
                groups[tuple(sorted(changes.items()))].append(record.pk)
                if "etag" in given:
                    etags[record.pk] = given["etag"]  # each copy's own: set in the same UPDATE, row by row
                changed.append(Change(before, after))
            # One UPDATE for all rows that change alike (an archival batch: all of them).
            for changes_key, ids in groups.items():
                per_row = [When(pk=pk, then=Value(etags[pk])) for pk in ids if pk in etags]
                etag = {"etag": Case(*per_row, default=F("etag"), output_field=TextField())} if per_row else {}
                PhysicalFile.objects.filter(pk__in=ids).update(**dict(changes_key), **etag)
            events.publish(changed)
        return out

    def delete(self, id: FileId) -> None:
        record = PhysicalFile.objects.filter(pk=id).first()
        if record is None:
            return
        count, _ = PhysicalFile.objects.filter(pk=id).delete()
        if count:
            events.publish([Change(record, None)])

    def find_expired_hot_files(self) -> list[PhysicalFile]:
        return list(PhysicalFile.objects.expired().filter(config_q(self.config)))

    def find_all(self) -> list[PhysicalFile]:
        return list(PhysicalFile.objects.filter(config_q(self.config)))

    def find_existing_paths(self, storage_tier: StorageTier, paths: list[str]) -> set[str]:
        return set(_existing_paths(storage_tier, paths))

    def claim_keys(self, owner: str, keys: list[ClaimKey], seconds: float) -> dict[ClaimKey, str]:
        return claim_keys(owner, keys, seconds)

    def release_keys(self, owner: str, keys: list[ClaimKey]) -> None:
        release_keys(owner, keys)

    def record_restore(
        self, id: FileId, expected_tier: StorageTier, expected_path: str, fields: RestoreFields
    ) -> PhysicalFile | None:
        # Only the restore columns, only where the object was looked at: a move that committed meanwhile wins.
        changes: dict[str, Any] = {k: v for k, v in fields.items() if k in RESTORE_FIELDS}
        changes["updated_at"] = now_ms()
        before = _where(id, expected_tier, expected_path).first()
        if before is None or not _where(id, expected_tier, expected_path).update(**changes):
            return None
        after = _applied(before, changes)
        events.publish([Change(before, after)])  # a restore found complete sends file_restored
        return after

    def run_after_commit(self, work: Callable[[], object]) -> bool:
        using = router.db_for_write(PhysicalFile)
        conn = connections[using]
        # The atomic blocks Django's TestCase opens around a test stand for autocommit (Django's own
        # durable check treats them so): only a transaction the code itself opened defers the work.
        if not conn.in_atomic_block or all(getattr(b, "_from_testcase", False) for b in conn.atomic_blocks):
            return False
        # robust: a failed delete after the commit is logged, it does not fail the caller's commit.
        transaction.on_commit(work, using=using, robust=True)
        return True


class DjangoORMAdapter(SyncBackedAdapter):
    """Records as PhysicalFile rows for async callers: each call is DjangoORMSyncAdapter's, on the ORM's thread."""

    def __init__(self, sync_adapter: DjangoORMSyncAdapter | None = None, config: str | None = None) -> None:
        super().__init__(sync_adapter or DjangoORMSyncAdapter(config))
        self._inserts = AsyncInserts()

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # thread_sensitive (the default): a sync caller's atomic() block (async_to_sync) is open on that thread.
        result: T = await sync_to_async(fn)(*args, **kwargs)
        return result

    # Creates keep their own path: rows created at the same moment by other tasks share one
    # INSERT (see inserts.py) instead of one sync_to_async hop each.

    async def create(self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None) -> PhysicalFile:
        if type(self.sync_adapter) is not DjangoORMSyncAdapter:
            return await super().create(storage_tier, filename, path, hot_until)  # a subclass's own create
        return await self._insert(_new_row(storage_tier, filename, path, hot_until, config=self.sync_adapter.config))

    async def create_stored(
        self, storage_tier: StorageTier, filename: str, path: str, hot_until: datetime | None, stored: ObjectInfo
    ) -> PhysicalFile:
        if type(self.sync_adapter) is not DjangoORMSyncAdapter:
            return await super().create_stored(storage_tier, filename, path, hot_until, stored)
        return await self._insert(_new_row(storage_tier, filename, path, hot_until, stored, self.sync_adapter.config))

    async def _insert(self, row: dict[str, Any]) -> PhysicalFile:
        record = await self._inserts.create(row)
        if getattr(record, IN_TRANSACTION, False):
            # Inserted inside a caller's atomic() block: its signals wait for that commit, on that thread.
            await self._call(events.publish, [Change(None, record)])
        else:
            await events.apublish([Change(None, record)])  # autocommitted: the row is there now
        return record
