"""The deep archive: an object's restore state, restore requests, and moves that wait for a restore.

Objects in GLACIER or DEEP_ARCHIVE (and in Intelligent-Tiering's archive access tiers) cannot be
read, presigned or copied until a RestoreObject has made a temporary copy readable, which takes
minutes to 48 hours. A HEAD tells the state (``StorageClass``, ``x-amz-restore``,
``x-amz-archive-status``); a record that keeps ``archive_state`` and ``restore_expires`` (the
Django model does, through the adapter's ``record_restore``) tells it without any request.

A move out of an archived object (``set_tier(..., restore=True)``) requests the restore and records
the move as pending; ``complete_restore`` (the Django beat task calls it for pending rows) HEADs the
object and, once restored, runs the ordinary move: claims, copy, verify, commit, delete.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from .adapters import SyncStorageAdapter
from .claims import seconds
from .config import parse_tier
from .exceptions import InvalidOptionError, ObjectArchivedError
from .moves import MoveOps
from .steps import Op, S3Call, db, now
from .types import ObjectInfo, PhysicalFile, RestoreFields, RestoreOptions, SetTierOptions, StorageTier

__all__ = [
    "ARCHIVE_CLASSES",
    "RESTORE_COSTS",
    "RESTORE_TIMES",
    "RETRIEVALS",
    "ArchiveState",
    "RestoreOps",
    "RestoreResult",
    "RestoreStatus",
    "check_restore_options",
    "needs_restore",
    "parse_restore_header",
    "recorded_status",
    "status_of",
]

#: The archive storage classes, with S3's minimum storage duration in days: an object deleted (or
#: moved out) sooner is billed for the rest of it.
ARCHIVE_CLASSES: dict[str, int] = {"GLACIER": 90, "DEEP_ARCHIVE": 180}
#: ``x-amz-archive-status`` values of Intelligent-Tiering objects that need a restore.
ARCHIVE_ACCESS_TIERS = frozenset({"ARCHIVE_ACCESS", "DEEP_ARCHIVE_ACCESS"})
RETRIEVALS = ("Expedited", "Standard", "Bulk")
MAX_RESTORE_DAYS = 365

#: How long a restore takes, by storage class and retrieval tier (AWS's published figures).
RESTORE_TIMES: dict[str, dict[str, str]] = {
    "GLACIER": {"Expedited": "1-5 minutes", "Standard": "3-5 hours", "Bulk": "5-12 hours"},
    "DEEP_ARCHIVE": {"Standard": "up to 12 hours", "Bulk": "up to 48 hours"},
    "INTELLIGENT_TIERING": {"Standard": "3-5 hours (up to 12 from Deep Archive Access)", "Bulk": "5-12 hours (up to 48)"},
}
#: What a restore costs, by storage class and retrieval tier (AWS us-east-1 list prices when this was
#: written; your region's may differ). The restored copy is also billed as STANDARD storage for its days.
RESTORE_COSTS: dict[str, dict[str, str]] = {
    "GLACIER": {
        "Expedited": "$0.03 per GB + $10 per 1,000 requests",
        "Standard": "$0.01 per GB + $0.05 per 1,000 requests",
        "Bulk": "no per-GB charge + $0.025 per 1,000 requests",
    },
    "DEEP_ARCHIVE": {
        "Standard": "$0.02 per GB + $0.10 per 1,000 requests",
        "Bulk": "$0.0025 per GB + $0.025 per 1,000 requests",
    },
    "INTELLIGENT_TIERING": {"Standard": "no retrieval charge", "Bulk": "no retrieval charge"},
}

_ONGOING = re.compile(r'ongoing-request\s*=\s*"(true|false)"', re.IGNORECASE)
_EXPIRY = re.compile(r'expiry-date\s*=\s*"([^"]+)"', re.IGNORECASE)


class ArchiveState(enum.StrEnum):
    """Whether an object can be read now: READABLE, ARCHIVED, RESTORING, or RESTORED (until a date)."""

    READABLE = "READABLE"
    ARCHIVED = "ARCHIVED"
    RESTORING = "RESTORING"
    RESTORED = "RESTORED"


@dataclass(frozen=True)
class RestoreStatus:
    """An object's archive state: its storage class, and until when a restored copy stays readable."""

    state: ArchiveState
    storage_class: str | None = None
    #: RESTORED: when the temporary copy goes away (UTC).
    expires: datetime | None = None
    #: RESTORING: when the restore was requested (UTC), when known.
    requested_at: datetime | None = None

    @property
    def retrievable(self) -> bool:
        """Return True when the object can be read, presigned and copied now."""
        return self.state in (ArchiveState.READABLE, ArchiveState.RESTORED)

    def __str__(self) -> str:
        if self.state is ArchiveState.RESTORED and self.expires is not None:
            return f"restored until {self.expires:%Y-%m-%d %H:%M} UTC"
        if self.state is ArchiveState.ARCHIVED:
            return f"archived ({self.storage_class})" if self.storage_class else "archived"
        return self.state.value.lower()


@dataclass
class RestoreResult:
    """What a restore request or a restore check did: the record, the state, and whether a request was sent."""

    file: PhysicalFile
    status: RestoreStatus
    #: True when this call sent a RestoreObject (False: one was under way, or none was needed).
    requested: bool
    message: str
    #: True when a pending move ran (``complete_restore``): ``file`` is the moved record.
    moved: bool = False


def needs_restore(storage_class: str | None, archive_status: str | None = None) -> bool:
    """Return True when objects of ``storage_class`` (or with that Intelligent-Tiering archive status) need a restore."""
    return (storage_class or "").upper() in ARCHIVE_CLASSES or (archive_status or "").upper() in ARCHIVE_ACCESS_TIERS


def parse_restore_header(value: str | None) -> tuple[bool | None, datetime | None]:
    """Return (ongoing, expiry) from an ``x-amz-restore`` header; (None, None) when there is none."""
    if not value:
        return None, None
    ongoing = _ONGOING.search(value)
    expiry = _EXPIRY.search(value)
    expires: datetime | None = None
    if expiry is not None:
        try:
            expires = parsedate_to_datetime(expiry.group(1))
        except (TypeError, ValueError):
            expires = None
    return (ongoing.group(1).lower() == "true") if ongoing else None, expires


def status_of(info: ObjectInfo, at: datetime | None = None) -> RestoreStatus:
    """Return the archive state a HEAD (``info``) shows."""
    if not needs_restore(info.storage_class, info.archive_status):
        return RestoreStatus(ArchiveState.READABLE, info.storage_class)
    ongoing, expires = parse_restore_header(info.restore)
    if ongoing:
        return RestoreStatus(ArchiveState.RESTORING, info.storage_class)
    if ongoing is False and expires is not None and expires > (at or now()):
        return RestoreStatus(ArchiveState.RESTORED, info.storage_class, expires)
    return RestoreStatus(ArchiveState.ARCHIVED, info.storage_class)


def recorded_status(file: PhysicalFile, storage_class: str | None, at: datetime | None = None) -> RestoreStatus | None:
    """Return the state the record knows (no request), or None for records that keep no archive state.

    ``storage_class``: the class the file's tier writes. A record with no state of its own is
    ARCHIVED when that class needs a restore, else READABLE.
    """
    if not hasattr(file, "archive_state"):
        return None
    state = getattr(file, "archive_state", None)
    expires = getattr(file, "restore_expires", None)
    requested = getattr(file, "restore_requested_at", None)
    if state is None:
        kind = ArchiveState.ARCHIVED if needs_restore(storage_class) else ArchiveState.READABLE
        return RestoreStatus(kind, storage_class)
    try:
        kind = ArchiveState(state)
    except ValueError:
        return None
    if kind is ArchiveState.RESTORED:
        if expires is not None and expires <= (at or now()):
            return RestoreStatus(ArchiveState.ARCHIVED, storage_class)
        return RestoreStatus(kind, storage_class, expires)
    return RestoreStatus(kind, storage_class, requested_at=requested if kind is ArchiveState.RESTORING else None)


def check_restore_options(options: RestoreOptions) -> tuple[int, str]:
    """Return (days, retrieval tier) of ``options``, or raise InvalidOptionError naming what to give."""
    days = options.days
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_RESTORE_DAYS:
        raise InvalidOptionError(f"restore days={days!r} is invalid: give whole days from 1 to {MAX_RESTORE_DAYS}.")
    retrieval = str(options.retrieval).capitalize()
    if retrieval not in RETRIEVALS:
        raise InvalidOptionError(f"retrieval={options.retrieval!r} is invalid: use one of {', '.join(RETRIEVALS)}.")
    return days, retrieval


def _expected(storage_class: str | None, retrieval: str) -> str:
    return RESTORE_TIMES.get((storage_class or "").upper(), {}).get(retrieval, "minutes to 48 hours")


class RestoreOps(MoveOps):
    """Restores and the moves that wait for them, as step generators; ``set_tier`` learns ``restore=True``."""

    def _class_of(self, tier: StorageTier) -> str | None:
        return self.store.tier(tier).storage_class

    def _archived(self, file: PhysicalFile, tier: StorageTier, status: RestoreStatus, operation: str) -> ObjectArchivedError:
        r = self.store.tier(tier)
        restoring = status.state is ArchiveState.RESTORING
        return ObjectArchivedError(
            f"file {file.id!r}: {ObjectArchivedError.hint(status.storage_class, restoring)}",
            operation=operation,
            tier=tier.value,
            bucket=r.bucket,
            key=file.path,
            storage_class=status.storage_class,
            restoring=restoring,
        )

    def refuse_archived(self, file: PhysicalFile, operation: str) -> None:
        """Raise ObjectArchivedError when the record knows its object is archived and not restored (no request)."""
        tier = parse_tier(file.storage_tier, what="storage_tier")
        status = recorded_status(file, self._class_of(tier))
        if status is not None and not status.retrievable:
            raise self._archived(file, tier, status, operation)

    def _may_be_archived(self, file: PhysicalFile, tier: StorageTier) -> bool:
        # Intelligent-Tiering moves objects into its archive access tiers by itself: only a HEAD tells.
        storage_class = (self._class_of(tier) or "").upper()
        return (
            needs_restore(storage_class)
            or storage_class == "INTELLIGENT_TIERING"
            or getattr(file, "archive_state", None) not in (None, "READABLE")
        )

    def _record(
        self, file: PhysicalFile, status: RestoreStatus, requested: bool, extra: RestoreFields | None = None
    ) -> Op[PhysicalFile]:
        """Store ``status`` on the record when the adapter keeps restore states and something changed."""
        if not self.features.record_restore:
            return file
        fields: RestoreFields = {"archive_state": status.state.value, "restore_expires": status.expires}
        if requested or (status.state is ArchiveState.RESTORING and getattr(file, "restore_requested_at", None) is None):
            fields["restore_requested_at"] = now()
        fields.update(extra or {})
        if all(getattr(file, name, None) == value for name, value in fields.items()):
            return file  # the poller's common case: still restoring, nothing to write
        tier = parse_tier(file.storage_tier, what="storage_tier")
        updated = yield from db(SyncStorageAdapter.record_restore, file.id, tier, file.path, fields)
        return updated if updated is not None else file

    def status(self, file: PhysicalFile) -> Op[RestoreStatus]:
        """Return the object's archive state as a HEAD shows it."""
        tier = parse_tier(file.storage_tier, what="storage_tier")
        info = yield S3Call(self.store.require, (tier, file.path))
        return status_of(info)

    def _request(self, file: PhysicalFile, tier: StorageTier, info: ObjectInfo, options: RestoreOptions) -> Op[RestoreResult]:
        days, retrieval = check_restore_options(options)
        status = status_of(info)
        requested = False
        if status.state is ArchiveState.ARCHIVED:
            sent = yield S3Call(self.store.restore_object, (tier, file.path, days, retrieval, info.storage_class))
            requested = bool(sent)
            status = RestoreStatus(ArchiveState.RESTORING, status.storage_class, requested_at=now())
            message = (
                f"restore requested ({retrieval}, {days} day(s)): expect it in {_expected(status.storage_class, retrieval)}."
                if requested
                else "a restore is already under way: nothing was changed."
            )
        elif status.state is ArchiveState.RESTORING:
            message = "a restore is already under way: nothing was changed."
        elif status.state is ArchiveState.RESTORED:
            message = f"already {status}: nothing was changed."
        else:
            message = "the object is readable: there is nothing to restore."
        record = yield from self._record(file, status, requested)
        return RestoreResult(record, status, requested, message)

    def restore(self, file: PhysicalFile, options: RestoreOptions | None = None) -> Op[RestoreResult]:
        """Request a restore of an archived file's object; idempotent: while one runs, another changes nothing."""
        check_restore_options(options or RestoreOptions())  # before any request
        tier = parse_tier(file.storage_tier, what="storage_tier")
        info = yield S3Call(self.store.require, (tier, file.path))
        return (yield from self._request(file, tier, info, options or RestoreOptions()))

    def set_tier(self, file: PhysicalFile, options: SetTierOptions) -> Op[PhysicalFile]:
        """Move as MoveOps does; out of an archived object raise ObjectArchivedError, or with ``restore`` record the move."""
        target = parse_tier(options.tier)
        current = parse_tier(file.storage_tier, what="storage_tier")
        if target is current or not options.move_file or not (options.restore or self._may_be_archived(file, current)):
            return (yield from super().set_tier(file, options))
        info = yield S3Call(self.store.head, (current, file.path))
        status = status_of(info) if info is not None else None
        if status is None or status.retrievable:
            return (yield from super().set_tier(file, options))
        if not options.restore:
            raise self._archived(file, current, status, "CopyObject")
        restore_options = options.restore if isinstance(options.restore, RestoreOptions) else RestoreOptions()
        assert info is not None
        result = yield from self._request(file, current, info, restore_options)
        if not self.features.record_restore:
            # Nowhere to keep the pending move: say so; the caller moves again once the restore completes.
            raise self._archived(file, current, result.status, "CopyObject")
        pending: RestoreFields = {
            "restore_move_to": target.value,
            "restore_hot_duration": seconds(options.hot_duration, "hot_duration"),
        }
        return (yield from self._record(result.file, result.status, False, pending))

    def complete_restore(self, file: PhysicalFile, options: RestoreOptions | None = None) -> Op[RestoreResult]:
        """Check a restore (one HEAD), record its state, and run the file's pending move once it is restored.

        A pending move whose object is archived again (the restore expired first, or was never
        made) gets a new restore request with ``options``.
        """
        tier = parse_tier(file.storage_tier, what="storage_tier")
        info = yield S3Call(self.store.require, (tier, file.path))
        move_to = getattr(file, "restore_move_to", None)
        status = status_of(info)
        if status.state is ArchiveState.ARCHIVED and move_to:
            result = yield from self._request(file, tier, info, options or RestoreOptions())
        else:
            record = yield from self._record(file, status, False)
            result = RestoreResult(record, status, False, str(status))
        if result.status.retrievable and move_to:
            hot = getattr(file, "restore_hot_duration", None)
            moved = yield from MoveOps.set_tier(self, result.file, SetTierOptions(move_to, hot_duration=hot))
            return RestoreResult(moved, result.status, result.requested, f"{result.status}: moved to {move_to}.", moved=True)
        return result
