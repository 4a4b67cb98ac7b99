"""S3StrataStorage: a Django storage backend that stores each file as a PhysicalFile in HOT or COLD.

The name Django keeps in a ``FileField`` is the key's suffix (``upload_to`` path plus
``{uuid}-{filename}``). Tier and visibility moves change only the key's prefix and the bucket,
never the suffix, so a stored name keeps working after its file is archived or made public.
Names are stored in Unicode NFC, and every name given to a lookup is normalised the same way
(``core.keys.normalize_name``), so a decomposed (NFD) name finds the file it saved.
"""

from __future__ import annotations

import posixpath
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import IO, Any

from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.core.files.storage import Storage
from django.utils import timezone
from django.utils.deconstruct import deconstructible

from . import conf
from .core.config import MAX_PRESIGN_EXPIRY, parse_seconds, parse_tier, parse_visibility
from .core.exceptions import InvalidKeyError
from .core.keys import normalize_name, unique_suffix, validate_suffix
from .core.restore import RestoreStatus
from .core.types import FileVisibility, GetUrlOptions, StorageTier
from .links import parse_url_mode
from .models import PhysicalFile
from .services import get_file_manager, store_upload

__all__ = ["S3StrataStorage", "prefetch_files"]

_UUID_PART = 37  # "{uuid4}-" added in front of the file name

_cache = threading.local()
#: Bumped when rows move or go: every thread's cache is stale from then on, not only the thread
#: that changed them (an async move runs its UPDATE on the ORM's thread, not its caller's).
_generation = [0]


#: A thread's cache lives this long at most (a request clears it sooner): rows another process moves
#: meanwhile are seen again after it, in a Celery worker or a command that has no requests.
CACHE_SECONDS = 10.0


def _records(config: str = conf.DEFAULT) -> dict[str, PhysicalFile]:
    """Return this thread's records by name of configuration ``config`` (a name is unique within one)."""
    records: dict[str, PhysicalFile] | None = getattr(_cache, "records", None)
    if (
        records is None
        or getattr(_cache, "generation", None) != _generation[0]
        or time.monotonic() - getattr(_cache, "started", 0.0) > CACHE_SECONDS
    ):
        records = _cache.records = {}
        _cache.others = {}
        _cache.generation = _generation[0]
        _cache.started = time.monotonic()
    if config == conf.DEFAULT:
        return records
    others: dict[str, dict[str, PhysicalFile]] | None = getattr(_cache, "others", None)
    if others is None:
        others = _cache.others = {}
    return others.setdefault(config, {})


def clear_cache(**kwargs: Any) -> None:
    """Forget this thread's records looked up by name (``request_started``/``request_finished``, connected in ``ready()``)."""
    _cache.records = {}
    _cache.others = {}
    _cache.generation = _generation[0]
    _cache.started = time.monotonic()
    _cache.loaded = {}


#: The most names of loaded instances' files waiting for a lookup (the most recent are kept).
LOADED_LIMIT = 500


def _loaded(config: str = conf.DEFAULT) -> dict[str, None]:
    by_config: dict[str, dict[str, None]] | None = getattr(_cache, "loaded", None)
    if by_config is None:
        by_config = _cache.loaded = {}
    return by_config.setdefault(config, {})


def remember_loaded(fields: tuple[str, ...], config: str = conf.DEFAULT) -> Callable[..., None]:
    """Return a ``post_init`` receiver that notes the file names of ``fields`` on each instance built.

    Instances loaded by one queryset are built one after another before any of them renders a
    URL, so the first ``url()`` finds its siblings' names here and looks them all up in one query:
    a page of a hundred rows costs one query for its files, with no ``prefetch_files`` call.
    """

    def note(sender: Any, instance: Any, **kwargs: Any) -> None:
        loaded = _loaded(config)
        for attname in fields:
            name = instance.__dict__.get(attname)
            if isinstance(name, str) and name:
                loaded[name] = None
        while len(loaded) > LOADED_LIMIT:
            del loaded[next(iter(loaded))]

    return note


def forget_changed(*, changes: list[Any], **kwargs: Any) -> None:
    """Forget the cached records once rows move or go (``events.rows_changed``, connected in ``AppConfig.ready()``).

    A created row cannot make a cached record stale (only found records are cached), so an
    upload keeps what ``prefetch_files`` looked up.
    """
    if any(change.before is not None for change in changes):
        _generation[0] += 1


def _candidates(name: str, config: str = conf.DEFAULT) -> dict[str, set[StorageTier]]:
    """Return each key ``name`` may have in ``config``, with the tiers where that key would be ``name``."""
    layout = conf.get_settings(config).layout
    paths: dict[str, set[StorageTier]] = {}
    for tier in StorageTier:
        for visibility in FileVisibility:
            paths.setdefault(f"{layout.prefix(tier, visibility)}/{name}", set()).add(tier)
    return paths


def _lookup(names: Iterable[str], config: str = conf.DEFAULT) -> dict[str, PhysicalFile]:
    """Return ``config``'s records of ``names`` (suffixes, NFC-normalised here) in one query, keyed by the NFC name."""
    wanted: dict[str, tuple[str, set[StorageTier]]] = {}
    for name in map(normalize_name, names):
        for path, tiers in _candidates(name, config).items():
            wanted[path] = (name, tiers)
    found: dict[str, PhysicalFile] = {}
    rows = PhysicalFile.objects.filter(path__in=list(wanted))
    if len(conf.config_names()) > 1:
        rows = rows.for_config(config)  # one configuration: every row is its own, as before configurations existed
    for record in rows.order_by("id"):
        name, tiers = wanted[record.path]
        if StorageTier(record.storage_tier) in tiers:
            found[name] = record
    return found


def prefetch_files(objects: Iterable[Any], field: str) -> None:
    """Look up in one query the records behind ``field`` of each object, so ``.url`` costs no query.

    For a ``FileField(storage=S3StrataStorage())``; a ``PhysicalFileField`` uses ``select_related``.
    """
    files = [getattr(obj, field) for obj in objects]
    names = [normalize_name(f.name) for f in files if f]
    if not names:
        return
    config = getattr(next(f for f in files if f).storage, "config", conf.DEFAULT)
    records = _records(config)
    records.update(_lookup((n for n in names if n not in records), config))


@deconstructible(path="django_s3strata.storage.S3StrataStorage")
class S3StrataStorage(Storage):
    """Store files in the HOT or COLD tier as PhysicalFile rows; usable in ``STORAGES`` and on a FileField."""

    def __init__(
        self,
        tier: StorageTier | str | None = None,
        visibility: FileVisibility | str | None = None,
        hot_duration: int | None = None,
        expires_in: int | None = None,
        url_mode: str = "direct",
        config: str = conf.DEFAULT,
    ) -> None:
        # Checked here, when the storage is built, so a bad option never reaches an upload.
        self.tier = parse_tier(tier) if tier is not None else None
        self.visibility = parse_visibility(visibility) if visibility is not None else None
        self.hot_duration = parse_seconds(hot_duration, "hot_duration")
        self.expires_in = parse_seconds(expires_in, "expires_in", minimum=1, maximum=MAX_PRESIGN_EXPIRY)
        # "view"/"signed": url() is the download view's link (by id / by token), which survives moves.
        self.url_mode = parse_url_mode(url_mode)
        # The S3STRATA configuration (bucket pair) of the files this storage saves and finds; checked
        # by the system checks, not here: a storage is built when settings.py is still loading.
        self.config = config

    # -- helpers -------------------------------------------------------------------

    def _manager(self) -> Any:
        return get_file_manager(self.config)

    def record(self, name: str) -> PhysicalFile | None:
        """Return the PhysicalFile stored under ``name`` (NFC-normalised first), or None."""
        name = normalize_name(name)
        records = _records(self.config)
        cached = records.get(name)
        if cached is not None:
            return cached
        # With the names of the files that instances loaded on this thread hold: one query for a page.
        loaded = _loaded(self.config)
        names = [name, *(n for n in loaded if n not in records)]
        loaded.clear()
        found = _lookup(names, self.config)
        records.update(found)
        return found.get(name)

    def _require(self, name: str) -> PhysicalFile:
        record = self.record(name)
        if record is None:
            raise FileNotFoundError(f"No PhysicalFile is stored under the name {name!r}.")
        return record

    # -- Storage API ---------------------------------------------------------------

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        """Return ``name`` in NFC, shortened so that the stored name (with its UUID) fits ``max_length``."""
        name = normalize_name(name).replace("\\", "/")
        if max_length is not None and len(name) + _UUID_PART > max_length:
            dirname, basename = posixpath.split(name)
            root, ext = posixpath.splitext(basename)
            room = max_length - _UUID_PART - len(ext) - (len(dirname) + 1 if dirname else 0)
            if room < 1:
                raise SuspiciousFileOperation(
                    f'Storage cannot store "{name}" in {max_length} characters: raise the field\'s max_length '
                    "or shorten upload_to."
                )
            name = posixpath.join(dirname, root[:room] + ext)
        return name

    def _save(self, name: str, content: File[Any]) -> str:
        basename, suffix = unique_suffix(name)
        try:
            suffix = validate_suffix(suffix)
        except InvalidKeyError as exc:
            raise SuspiciousFileOperation(str(exc)) from exc
        store_upload(content, basename, suffix, self.tier, self.visibility, self.hot_duration, self.config)
        return suffix  # the name stored (NFC), which every lookup normalises to

    def _open(self, name: str, mode: str = "rb") -> File[Any]:
        if any(c in mode for c in "wax+"):
            raise ValueError(f"S3StrataStorage opens files for reading only, not mode {mode!r}: save() new content instead.")
        record = self._require(name)
        stream: IO[bytes] = self._manager().sync.open(record)
        return File(stream, name=normalize_name(name))

    def delete(self, name: str) -> None:
        """Delete the row, then the object; a missing name is not an error."""
        record = self.record(name)
        if record is not None:
            self._manager().sync.delete(record)
        _records(self.config).pop(normalize_name(name), None)

    def exists(self, name: str) -> bool:
        """Return True when a PhysicalFile is stored under ``name`` (a database query, no S3 request)."""
        return self.record(name) is not None

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        """Return the directories and files under ``path`` across both tiers and visibilities."""
        store = self._manager().objectstore
        base = normalize_name(path).strip("/")
        dirs: set[str] = set()
        files: set[str] = set()
        for tier in StorageTier:
            for visibility in FileVisibility:
                prefix = f"{store.tier(tier).prefix(visibility)}/{base + '/' if base else ''}"
                sub_dirs, sub_files = store.list_dir(tier, prefix)
                dirs.update(sub_dirs)
                files.update(sub_files)
        return sorted(dirs), sorted(files)

    def size(self, name: str) -> int:
        """Return the size in bytes (from the row when known, else one HEAD request)."""
        record = self._require(name)
        if record.size is not None:
            return int(record.size)
        info = self._manager().objectstore.require(StorageTier(record.storage_tier), record.path)
        return int(info.size)

    def url(self, name: str | None) -> str:
        """Return the direct or presigned URL, or the download view's (``url_mode``); no S3 request; one query unprefetched."""
        if not name:
            raise ValueError("This file has no name, so it has no URL.")
        record = self._require(name)
        if self.url_mode != "direct":
            return record.download_url(signed=self.url_mode == "signed")
        return str(self._manager().sync.get_url(record, GetUrlOptions(self.expires_in)))

    # -- the deep archive (docs/archive.md) ------------------------------------------

    def restore_status(self, name: str) -> RestoreStatus:
        """Return the archive state of the file stored under ``name`` as its row knows it (no S3 request)."""
        return self._require(name).restore_status

    def is_retrievable(self, name: str) -> bool:
        """Return True when the file can be read and linked to now: ``url()`` of one that is not raises ObjectArchivedError."""
        return self._require(name).is_retrievable

    def _time(self, value: datetime) -> datetime:
        from django.conf import settings

        return value if settings.USE_TZ else timezone.make_naive(value)

    def get_created_time(self, name: str) -> datetime:
        """Return when the row was created."""
        return self._time(self._require(name).created_at)

    def get_modified_time(self, name: str) -> datetime:
        """Return when the row last changed (a move counts)."""
        return self._time(self._require(name).updated_at)

    def get_accessed_time(self, name: str) -> datetime:
        """S3 keeps no access time."""
        raise NotImplementedError("S3 does not record when an object was last read.")
