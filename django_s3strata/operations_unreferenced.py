"""Unreferenced files: PhysicalFile rows that no foreign key and no FileField on S3StrataStorage points at.

The referencing fields are found in the app registry (``apps.get_models()``, auto-created
many-to-many tables included): every ``ForeignKey``/``OneToOneField`` to PhysicalFile (a
``PhysicalFileField`` is one) and every ``FileField`` whose storage is S3StrataStorage (its value
is the key's suffix). Candidates are read in batches of ids (keyset, ``ORDER BY id``), each batch
one query with one ``NOT EXISTS`` anti-join per referencing field in PhysicalFile's database; a
field whose model another database holds is checked with one ``IN`` query per batch instead.
Rows younger than the grace period, and rows whose path lies outside the configured prefixes,
are never candidates. Deletion goes through the FileManager (claims, row first, then object),
after checking the batch's references once more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.db import models, router
from django.db.models import Case, Exists, OuterRef, Q, Value, When
from django.db.models.functions import Substr
from django.utils import timezone

from . import conf
from .core.exceptions import InvalidOptionError
from .core.types import FileVisibility, StorageTier
from .models import PhysicalFile
from .operations_runs import Progress, RunSummary, no_progress

__all__ = [
    "Reference",
    "UnreferencedSummary",
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
        """Return the PhysicalFile column the field's value matches (``id``, or the annotated suffix)."""
        return "_s3strata_suffix" if self.by_name else self.field.target_field.attname  # type: ignore[attr-defined]

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


def _prefixes() -> list[tuple[Q, int]]:
    """Return (the rows under one tier's visibility prefix, where their suffix starts) for each prefix."""
    layout = conf.get_settings().layout
    out = []
    for tier in StorageTier:
        for visibility in FileVisibility:
            head = layout.prefix(tier, visibility) + "/"
            out.append((Q(storage_tier=tier.value, path__startswith=head), len(head) + 1))
    return out


def _suffix(record: PhysicalFile) -> str | None:
    try:
        return conf.get_settings().layout.location(record)[2]  # type: ignore[arg-type]
    except ValueError:
        return None


def _referenced_in(ref: Reference, records: list[PhysicalFile]) -> set[int]:
    """Return the ids among ``records`` that ``ref`` references (one query)."""
    attname = ref.field.attname
    if ref.by_name:
        by_suffix: dict[str, list[int]] = {}
        for record in records:
            suffix = _suffix(record)
            if suffix is not None:
                by_suffix.setdefault(suffix, []).append(record.pk)
        if not by_suffix:
            return set()
        # Case-insensitive collations (MariaDB's) may match more names: that keeps files, never loses one.
        names = ref.model._base_manager.filter(**{f"{attname}__in": list(by_suffix)}).values_list(attname, flat=True)
        lowered = {n.lower() for n in names}
        return {pk for suffix, pks in by_suffix.items() if suffix.lower() in lowered for pk in pks}
    target = ref.field.target_field.attname  # type: ignore[attr-defined]
    values = {getattr(r, target): r.pk for r in records}
    hits = ref.model._base_manager.filter(**{f"{attname}__in": list(values)}).values_list(attname, flat=True)
    return {values[v] for v in hits if v in values}


def referenced(records: list[PhysicalFile], refs: list[Reference] | None = None) -> set[int]:
    """Return the ids of ``records`` that some row references (one query per referencing field)."""
    hits: set[int] = set()
    for ref in referencing_fields() if refs is None else refs:
        rest = [r for r in records if r.pk not in hits]
        if not rest:
            break
        hits |= _referenced_in(ref, rest)
    return hits


def _candidates(cutoff: Any, refs: list[Reference]) -> Any:
    prefixes = _prefixes()
    inside = Q()
    for condition, _start in prefixes:
        inside |= condition
    qs = PhysicalFile.objects.filter(inside, created_at__lt=cutoff)
    if any(ref.by_name and ref.same_database() for ref in refs):
        qs = qs.annotate(
            _s3strata_suffix=Case(
                *(When(condition, then=Substr("path", start)) for condition, start in prefixes),
                default=Value(None),
                output_field=models.TextField(),
            )
        )
    for ref in refs:
        if ref.same_database():
            qs = qs.filter(~Exists(ref.model._base_manager.filter(**{ref.field.attname: OuterRef(ref.target)})))
    return qs.order_by("pk").only("id", "storage_tier", "filename", "path", "size", "created_at")


def _grace(grace: int | None) -> int:
    value = conf.get_settings().options["UNREFERENCED_GRACE"] if grace is None else grace
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidOptionError(f"grace={value!r} is invalid: give whole seconds (0 or more).")
    return value


def find_unreferenced(grace: int | None = None, batch_size: int = BATCH_SIZE) -> Iterator[list[PhysicalFile]]:
    """Yield batches of the rows older than ``grace`` seconds that no field references, in id order."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidOptionError(f"batch_size={batch_size!r} is invalid: give a whole number (1 or more).")
    refs = referencing_fields()
    elsewhere = [ref for ref in refs if not ref.same_database()]
    base = _candidates(timezone.now() - timedelta(seconds=_grace(grace)), refs)
    last: int | None = None
    while True:
        rows = list((base if last is None else base.filter(pk__gt=last))[:batch_size])
        if not rows:
            return
        last, full = rows[-1].pk, len(rows) == batch_size
        if elsewhere:
            taken = referenced(rows, elsewhere)
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
) -> UnreferencedSummary:
    """Report (``"report"``) or delete (``"delete"``) the unreferenced files older than ``grace`` seconds.

    A delete checks each batch's references again first (a row may point at a file since it was
    found), then deletes each file through the FileManager. ``dry_run`` deletes nothing.
    """
    import time

    if mode not in ("report", "delete"):
        raise InvalidOptionError(f"mode={mode!r} is invalid: use 'report' or 'delete'.")
    started = time.monotonic()
    summary = UnreferencedSummary(mode, _grace(grace), dry_run)
    deleting = mode == "delete" and not dry_run
    for batch in find_unreferenced(summary.grace, batch_size):
        if deleting:
            again = referenced(batch)
            summary.kept += len(again)
            batch = [r for r in batch if r.pk not in again]
        for record in batch:
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
            action = "report" if mode == "report" else "would delete" if dry_run else "delete"
            if deleting:
                try:
                    record.delete()
                    summary.deleted += 1
                except Exception as exc:
                    logger.warning("s3strata: deleting unreferenced file %s failed: %s", record.pk, exc)
                    summary.failed += 1
                    summary.errors.append({"id": record.pk, "path": record.path, "error": str(exc)})
                    action = "failed"
            if on_file is not None:
                on_file(record, action)
        progress(len(batch))
    summary.duration = round(time.monotonic() - started, 3)
    return summary
