"""Unreferenced files: PhysicalFile rows that no foreign key and no FileField on S3StrataStorage points at.

The referencing fields are found in the app registry (``apps.get_models()``, auto-created
many-to-many tables included): every ``ForeignKey``/``OneToOneField`` to PhysicalFile (a
``PhysicalFileField`` is one) and every ``FileField`` whose storage is S3StrataStorage (its value
is the key's suffix). Candidates are read in batches of ids (keyset, ``ORDER BY id``), each batch
one query with one ``NOT EXISTS`` anti-join per referencing field in PhysicalFile's database; a
field whose model another database holds is checked with one ``IN`` query per batch instead.
Rows younger than the grace period, and rows whose path lies outside the configured prefixes,
are never candidates. A ``FileField`` references a file when its value, NFC-normalised as the
storage normalises every name it looks up, is the key's suffix: the anti-join compares the bytes,
then the names that may normalise to a candidate's suffix (the same text at both ends, around the
characters normalisation can change) are read and compared normalised (``_loose_matches``).

Deletion (``delete_if_unreferenced``, the sweep's and ``delete_on_replace``'s) checks one file's
references again inside a transaction that locks its row, deletes the row with a plain DELETE (no
Collector that would set a new reference to NULL: the reference fails its foreign key instead),
and only once that has committed hands the file to the FileManager, which deletes the object
under its key's claim.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.db import IntegrityError, connections, models, router, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from . import conf
from .adapters import delete_row
from .core.exceptions import InvalidOptionError
from .core.keys import normalize_name
from .core.types import FileVisibility, StorageTier
from .models import PhysicalFile
from .operations_runs import Progress, RunSummary, no_progress
from .services import get_file_manager

__all__ = [
    "Reference",
    "UnreferencedSummary",
    "delete_if_unreferenced",
    "find_unreferenced",
    "referenced",
    "referencing_fields",
    "sweep_unreferenced",
]

logger = logging.getLogger(__name__)

#: Rows read (and checked) per query.
BATCH_SIZE = 2000
#: The most files a summary lists (its counts cover them all).
LIST_LIMIT = 1000
#: Candidates per query of ``_loose_matches`` (one OR term each).
LOOSE_CHUNK = 100
#: ASCII characters that NFC makes of other characters (U+212A KELVIN SIGN is "K", U+037E ";",
#: U+1FEF "`"), lower case included: names compare case-insensitively.
_SINGLETON_TARGETS = frozenset("Kk;`")


@dataclass(frozen=True)
class Reference:
    """A field that references PhysicalFile rows: by id (``ForeignKey``) or by name (``FileField``)."""

    model: type[models.Model]
    field: models.Field  # type: ignore[type-arg]
    by_name: bool

    @property
    def label(self) -> str:
        return f"{self.model._meta.label}.{self.field.name}"

    @property
    def target(self) -> str:
        """Return the PhysicalFile column a foreign key's value matches (``id``)."""
        return self.field.target_field.attname  # type: ignore[attr-defined]

    def same_database(self) -> bool:
        return router.db_for_read(self.model) == router.db_for_read(PhysicalFile)


def _on_our_storage(file_field: models.FileField) -> bool:  # type: ignore[type-arg]
    # By class name, not isinstance: the storage is a face above this engine. ``__class__`` also
    # sees through ``default_storage``, a lazy object.
    cls = file_field.storage.__class__
    return any(c.__module__ == "django_s3strata.storage" and c.__qualname__ == "S3StrataStorage" for c in cls.__mro__)


def referencing_fields() -> list[Reference]:
    """Return every field of every installed model that references PhysicalFile rows."""
    found: list[Reference] = []
    for model in apps.get_models(include_auto_created=True):
        if model._meta.proxy or model._meta.swapped or model is PhysicalFile:
            continue
        for f in model._meta.concrete_fields:
            if isinstance(f, models.ForeignKey) and f.remote_field.model is PhysicalFile:
                found.append(Reference(model, f, by_name=False))
            elif isinstance(f, models.FileField) and _on_our_storage(f):
                found.append(Reference(model, f, by_name=True))
    return found


def _prefixes(config: str | None = None) -> list[tuple[Q, int]]:
    """Return (the rows under one tier's visibility prefix, where their suffix starts) for each prefix of ``config``."""
    layout = conf.get_settings(config).layout
    out = []
    for tier in StorageTier:
        for visibility in FileVisibility:
            head = layout.prefix(tier, visibility) + "/"
            out.append((Q(storage_tier=tier.value, path__startswith=head), len(head) + 1))
    return out


def _suffix(record: PhysicalFile) -> str | None:
    try:
        return conf.get_settings(record.config).layout.location(record)[2]  # type: ignore[arg-type]
    except ValueError:
        return None


def _name_key(name: str) -> str:
    """Return what two names that find the same file share: NFC (as the storage looks names up), lower-cased."""
    return normalize_name(name).lower()


def _anchors(suffix: str) -> tuple[str, str] | None:
    """Return (head, tail) that every name normalising to ``suffix`` starts and ends with; None: only ``suffix`` itself.

    NFC changes non-ASCII characters, an ASCII letter a combining mark follows, and the singletons
    that become ``_SINGLETON_TARGETS``; the text before the first of those (less the letter a mark
    may follow) and after the last is the same in every form of the name.
    """
    changeable = [i for i, c in enumerate(suffix) if ord(c) > 127 or c in _SINGLETON_TARGETS]
    if not changeable:
        return None
    return suffix[: max(changeable[0] - 1, 0)], suffix[changeable[-1] + 1 :]


def _manager(ref: Reference, fresh: bool) -> Any:
    # ``fresh``: the database written to, not a replica that may not have the newest references yet.
    manager = ref.model._base_manager
    return manager.db_manager(router.db_for_write(ref.model)) if fresh else manager


def _loose_matches(ref: Reference, suffixes: list[str], fresh: bool = False) -> set[str]:
    """Return the values of by-name ``ref`` that may differ from one of ``suffixes`` in bytes, not once normalised.

    One query per LOOSE_CHUNK suffixes that normalisation could change (none for plain ASCII names).
    """
    anchors = sorted({a for a in map(_anchors, suffixes) if a is not None})
    attname = ref.field.attname
    found: set[str] = set()
    for start in range(0, len(anchors), LOOSE_CHUNK):
        where = Q()
        for head, tail in anchors[start : start + LOOSE_CHUNK]:
            where |= Q(**{f"{attname}__istartswith": head, f"{attname}__iendswith": tail})
        found.update(_manager(ref, fresh).filter(where).values_list(attname, flat=True))
    return found


def _referenced_in(ref: Reference, records: list[PhysicalFile], *, fresh: bool = False) -> set[int]:
    """Return the ids among ``records`` that ``ref`` references (one query; a name that may be in another form, one more)."""
    attname = ref.field.attname
    if ref.by_name:
        by_key: dict[str, list[int]] = {}
        suffixes: list[str] = []
        for record in records:
            suffix = _suffix(record)
            if suffix is not None:
                by_key.setdefault(_name_key(suffix), []).append(record.pk)
                suffixes.append(suffix)
        if not by_key:
            return set()
        names = _loose_matches(ref, suffixes, fresh)
        # Case-insensitive collations (MariaDB's) may match more names: that keeps files, never loses one.
        names.update(_manager(ref, fresh).filter(**{f"{attname}__in": suffixes}).values_list(attname, flat=True))
        keys = {_name_key(n) for n in names if n}
        return {pk for key, pks in by_key.items() if key in keys for pk in pks}
    target = ref.field.target_field.attname  # type: ignore[attr-defined]
    values = {getattr(r, target): r.pk for r in records}
    hits = _manager(ref, fresh).filter(**{f"{attname}__in": list(values)}).values_list(attname, flat=True)
    return {values[v] for v in hits if v in values}


def referenced(records: list[PhysicalFile], refs: list[Reference] | None = None, *, fresh: bool = False) -> set[int]:
    """Return the ids of ``records`` that some row references (one query per referencing field).

    ``fresh`` reads each field's table on the database its model is written to (never a replica).
    """
    hits: set[int] = set()
    for ref in referencing_fields() if refs is None else refs:
        rest = [r for r in records if r.pk not in hits]
        if not rest:
            break
        hits |= _referenced_in(ref, rest, fresh=fresh)
    return hits


def delete_if_unreferenced(file_id: Any, refs: list[Reference] | None = None) -> str:
    """Delete file ``file_id`` (row, then object) unless a field references it; return "deleted", "kept" or "gone".

    Its row is locked (``select_for_update``) while its references are checked once more and it is
    deleted with a plain DELETE, without Django's Collector: a reference made after the check fails
    its own foreign key (or makes this delete fail it: "kept"), instead of being set to NULL or
    cascaded to. Only once the row's delete has committed does the FileManager delete the object,
    under its key's claim (inside a caller's transaction: when that one commits).
    """
    using = router.db_for_write(PhysicalFile)
    conn = connections[using]
    nested = conn.in_atomic_block
    try:
        with transaction.atomic(using=using):
            record = PhysicalFile.objects.using(using).select_for_update().filter(pk=file_id).first()
            if record is None:
                return "gone"
            if referenced([record], refs, fresh=True):
                return "kept"
            delete_row(record, using)
            if nested and conn.vendor == "postgresql":
                # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: checked now, not at the caller's commit.
                conn.check_constraints()
    except IntegrityError as exc:
        logger.info("s3strata: file %s was referenced while it was being deleted; kept (%s)", file_id, exc)
        return "kept"
    get_file_manager(record.config).sync.delete(record)  # the row is gone: the object, under its claim
    return "deleted"


def _candidates(cutoff: Any, refs: list[Reference], config: str | None = None) -> Any:
    prefixes = _prefixes(config)
    inside = Q()
    for condition, _start in prefixes:
        inside |= condition
    qs = PhysicalFile.objects.filter(inside, created_at__lt=cutoff).for_config(config)
    # Foreign keys in the query (an anti-join on an indexed column). Names are compared per batch in
    # Python (``find_unreferenced``): a name column has no index, and an anti-join on a computed suffix
    # is a nested scan on SQLite (a minute for 20,000 rows) and compares bytes, not normalised names.
    for ref in refs:
        if ref.same_database() and not ref.by_name:
            qs = qs.filter(~Exists(ref.model._base_manager.filter(**{ref.field.attname: OuterRef(ref.target)})))
    return qs.order_by("pk").only("id", "storage_tier", "filename", "path", "size", "created_at", "config")


def _grace(grace: int | None, config: str | None = None) -> int:
    value = conf.get_settings(config).options["UNREFERENCED_GRACE"] if grace is None else grace
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidOptionError(f"grace={value!r} is invalid: give whole seconds (0 or more).")
    return value


def find_unreferenced(
    grace: int | None = None, batch_size: int = BATCH_SIZE, config: str | None = None
) -> Iterator[list[PhysicalFile]]:
    """Yield batches of configuration ``config``'s rows older than ``grace`` seconds that no field references, in id order."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidOptionError(f"batch_size={batch_size!r} is invalid: give a whole number (1 or more).")
    refs = referencing_fields()
    elsewhere = [ref for ref in refs if not ref.same_database()]
    by_name = [ref for ref in refs if ref.by_name and ref.same_database()]
    base = _candidates(timezone.now() - timedelta(seconds=_grace(grace, config)), refs, config)
    last: int | None = None
    while True:
        rows = list((base if last is None else base.filter(pk__gt=last))[:batch_size])
        if not rows:
            return
        last, full = rows[-1].pk, len(rows) == batch_size
        if elsewhere:
            taken = referenced(rows, elsewhere)
            rows = [r for r in rows if r.pk not in taken]
        for ref in by_name:  # one query a batch (two where a name may be in another Unicode form)
            if rows:
                taken = _referenced_in(ref, rows)
                rows = [r for r in rows if r.pk not in taken]
        if rows:
            yield rows
        if not full:
            return


@dataclass
class UnreferencedSummary(RunSummary):
    """What a run found and did (JSON-serialisable through ``as_dict``)."""

    mode: str
    grace: int
    dry_run: bool = False
    found: int = 0
    bytes: int = 0
    deleted: int = 0
    #: Found, then referenced again before the delete: kept.
    kept: int = 0
    failed: int = 0
    #: The first LIST_LIMIT files found: {id, filename, path, size, created_at}.
    files: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    duration: float = 0.0


def sweep_unreferenced(
    mode: str = "report",
    *,
    grace: int | None = None,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    on_file: Callable[[PhysicalFile, str], None] | None = None,
    progress: Progress = no_progress,
    config: str | None = None,
) -> UnreferencedSummary:
    """Report (``"report"``) or delete (``"delete"``) configuration ``config``'s unreferenced files older than ``grace`` seconds.

    A delete goes file by file through ``delete_if_unreferenced``: a file some row has pointed at
    since it was found is kept (``kept``), one deleted meanwhile is skipped. ``dry_run`` deletes nothing.
    """
    import time

    if mode not in ("report", "delete"):
        raise InvalidOptionError(f"mode={mode!r} is invalid: use 'report' or 'delete'.")
    started = time.monotonic()
    summary = UnreferencedSummary(mode, _grace(grace, config), dry_run)
    deleting = mode == "delete" and not dry_run
    refs = referencing_fields()
    for batch in find_unreferenced(summary.grace, batch_size, config):
        for record in batch:
            action = "report" if mode == "report" else "would delete" if dry_run else "delete"
            if deleting:
                try:
                    outcome = delete_if_unreferenced(record.pk, refs)
                except Exception as exc:
                    logger.warning("s3strata: deleting unreferenced file %s failed: %s", record.pk, exc)
                    summary.failed += 1
                    summary.errors.append({"id": record.pk, "path": record.path, "error": str(exc)})
                    action = "failed"
                else:
                    if outcome != "deleted":
                        summary.kept += outcome == "kept"
                        continue
                    summary.deleted += 1
            summary.found += 1
            summary.bytes += record.size or 0
            if len(summary.files) < LIST_LIMIT:
                summary.files.append(
                    {
                        "id": record.pk,
                        "filename": record.filename,
                        "path": record.path,
                        "size": record.size,
                        "created_at": record.created_at.isoformat(),
                    }
                )
            if on_file is not None:
                on_file(record, action)
        progress(len(batch))
    summary.duration = round(time.monotonic() - started, 3)
    return summary
