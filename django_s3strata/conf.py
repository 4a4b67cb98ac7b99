"""Read ``settings.S3STRATA`` once, refuse unknown keys by name, and build the core configuration."""

from __future__ import annotations

import dataclasses
import difflib
import functools
from typing import Any

from django.conf import settings

from .core.config import S3StrataAdvancedOptions, S3StrataConfig, S3TierConfig, parse_seconds
from .core.exceptions import ConfigurationError, InvalidOptionError
from .core.layout import Layout
from .core.types import StorageTier

__all__ = ["DJANGO_OPTIONS", "DjangoS3StrataConfig", "S3StrataSettings", "get_settings", "missing_keys", "reset"]

#: Options that only the Django app reads, with their defaults.
DJANGO_OPTIONS: dict[str, Any] = {
    # Map PhysicalFile onto the table an s3strata-ts (Prisma) app uses: "PhysicalFile", enum "StorageTier".
    "SHARED_TABLE": False,
    # New files stored through S3StrataStorage or PhysicalFileField without options of their own.
    "STORAGE_TIER": None,
    "STORAGE_VISIBILITY": None,
    "STORAGE_HOT_DURATION": None,
    # Archival: rows claimed per transaction, parallel moves, and how long a claim lasts (seconds).
    "ARCHIVE_BATCH_SIZE": 200,
    "ARCHIVE_CONCURRENCY": 8,
    "ARCHIVE_LEASE_SECONDS": 1800,
    # Celery beat intervals in seconds (None leaves the entry out of the schedule).
    "ARCHIVE_INTERVAL": 300,
    "ORPHAN_SWEEP_INTERVAL": 86400,
    "ORPHAN_SWEEP_MODE": "report",
    "VERIFY_INTERVAL": None,
    # Direct browser-to-S3 uploads (docs/direct-uploads.md): how long a grant lasts (seconds), the
    # permission a user needs (None: any signed-in user) or a "dotted.path" to a callable
    # (request, policy) -> bool, the content types accepted (None: "*/*", which admits no active
    # type such as text/html; "image/*" patterns), the largest file (None: S3's 5 TiB), the size
    # above which the browser uploads in parts, the part size, and (starts, seconds) allowed per
    # user (None: no limit; counted in Django's default cache).
    "DIRECT_UPLOAD_EXPIRES": 3600,
    "DIRECT_UPLOAD_PERMISSION": "s3strata.add_physicalfile",
    "DIRECT_UPLOAD_AUTHORIZE": None,
    "DIRECT_UPLOAD_CONTENT_TYPES": None,
    "DIRECT_UPLOAD_MAX_SIZE": 5 * 1024**3,
    "DIRECT_UPLOAD_MULTIPART_THRESHOLD": 64 * 1024 * 1024,
    "DIRECT_UPLOAD_PART_SIZE": 16 * 1024 * 1024,
    "DIRECT_UPLOAD_RATE_LIMIT": (100, 3600),
    # How a browser sends a file below the multipart threshold: "post" (a POST policy) or "put" (a
    # presigned PUT, for providers without POST Object such as Cloudflare R2; docs/providers.md).
    "DIRECT_UPLOAD_METHOD": "post",
    # Download links (docs/django.md): who may download by id (None: PUBLIC files for anyone,
    # PRIVATE files for users with s3strata.view_physicalfile; or a "dotted.path" to a callable
    # (request, file) -> bool), how long the URL the view redirects to lasts (seconds), and
    # "attachment" or "inline" when the link does not say.
    "DOWNLOAD_AUTHORIZE": None,
    "DOWNLOAD_URL_EXPIRES": 60,
    "DOWNLOAD_DISPOSITION": "attachment",
    # Unreferenced files (rows no field points at): how old one must be before it counts
    # (seconds; a direct upload's ref lives 24 hours), and the beat interval (None: not scheduled).
    "UNREFERENCED_GRACE": 86400,
    "UNREFERENCED_SWEEP_INTERVAL": None,
    "UNREFERENCED_SWEEP_MODE": "report",
    # The deep archive (docs/archive.md): how often the beat task checks pending restores (seconds;
    # None leaves it out of the schedule), how many rows one run checks (one HEAD each), and the
    # days and retrieval tier of restores the admin, the command and pending moves request.
    "RESTORE_POLL_INTERVAL": 900,
    "RESTORE_POLL_BATCH": 200,
    "RESTORE_DAYS": 3,
    "RESTORE_RETRIEVAL": "Standard",
}


def _fields(cls: type) -> dict[str, str]:
    """Return {UPPER_NAME: field_name} for a dataclass."""
    return {f.name.upper(): f.name for f in dataclasses.fields(cls)}


_TOP = {k: v for k, v in _fields(S3StrataConfig).items() if k not in ("HOT", "COLD", "ADVANCED")}
_TIER = _fields(S3TierConfig)
_ADVANCED = _fields(S3StrataAdvancedOptions)


def _refuse_unknown(given: dict[str, Any], known: set[str], where: str) -> None:
    for key in given:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigurationError(f"Unknown key {key!r} in {where}.{hint} Known keys: {', '.join(sorted(known))}.")


def _check_direct_uploads(options: dict[str, Any]) -> None:
    """Refuse direct-upload options that would make grants unbounded or unparseable."""
    from .core.contenttypes import parse_pattern
    from .core.direct import MAX_OBJECT_SIZE, MAX_PART_SIZE, MIN_PART_SIZE

    def whole(name: str, low: int, high: float, *, none: bool = False) -> None:
        value = options[name]
        if none and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigurationError(f"settings.S3STRATA[{name!r}]={value!r} is invalid: give whole bytes from {low} to {high}.")

    whole("DIRECT_UPLOAD_MAX_SIZE", 1, MAX_OBJECT_SIZE, none=True)
    whole("DIRECT_UPLOAD_PART_SIZE", MIN_PART_SIZE, MAX_PART_SIZE)
    whole("DIRECT_UPLOAD_MULTIPART_THRESHOLD", 1, MAX_OBJECT_SIZE)
    patterns = options["DIRECT_UPLOAD_CONTENT_TYPES"]
    if patterns is not None:
        if isinstance(patterns, str) or not isinstance(patterns, list | tuple):
            raise ConfigurationError("settings.S3STRATA['DIRECT_UPLOAD_CONTENT_TYPES'] must be a list such as ['image/*'].")
        try:
            for pattern in patterns:
                parse_pattern(pattern)
        except InvalidOptionError as exc:
            raise ConfigurationError(f"settings.S3STRATA['DIRECT_UPLOAD_CONTENT_TYPES']: {exc}") from None
    if options["DIRECT_UPLOAD_METHOD"] not in ("post", "put"):
        raise ConfigurationError(
            f"settings.S3STRATA['DIRECT_UPLOAD_METHOD']={options['DIRECT_UPLOAD_METHOD']!r} is invalid: "
            "give 'post' (a presigned POST policy) or 'put' (a presigned PUT, for providers without POST Object)."
        )
    rate = options["DIRECT_UPLOAD_RATE_LIMIT"]
    if rate is not None and not (
        isinstance(rate, list | tuple)
        and len(rate) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in rate)
    ):
        raise ConfigurationError(
            f"settings.S3STRATA['DIRECT_UPLOAD_RATE_LIMIT']={rate!r} is invalid: "
            "give (starts, seconds), e.g. (100, 3600), or None."
        )


def _check_downloads(options: dict[str, Any]) -> None:
    """Refuse download and unreferenced-file options that no link or sweep could honour."""
    from .core.config import MAX_PRESIGN_EXPIRY

    expires = options["DOWNLOAD_URL_EXPIRES"]
    if isinstance(expires, bool) or not isinstance(expires, int) or not 1 <= expires <= MAX_PRESIGN_EXPIRY:
        raise ConfigurationError(
            f"settings.S3STRATA['DOWNLOAD_URL_EXPIRES']={expires!r} is invalid: "
            f"give whole seconds from 1 to {MAX_PRESIGN_EXPIRY}."
        )
    if options["DOWNLOAD_DISPOSITION"] not in ("attachment", "inline"):
        raise ConfigurationError(
            f"settings.S3STRATA['DOWNLOAD_DISPOSITION']={options['DOWNLOAD_DISPOSITION']!r} is invalid: "
            "use 'attachment' or 'inline'."
        )
    hook = options["DOWNLOAD_AUTHORIZE"]
    if hook is not None and not (isinstance(hook, str) or callable(hook)):
        raise ConfigurationError("settings.S3STRATA['DOWNLOAD_AUTHORIZE'] must be None, a callable or a 'dotted.path'.")
    for name in ("UNREFERENCED_GRACE", "UNREFERENCED_SWEEP_INTERVAL"):
        value = options[name]
        if value is None and name == "UNREFERENCED_SWEEP_INTERVAL":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigurationError(f"settings.S3STRATA[{name!r}]={value!r} is invalid: give whole seconds (0 or more).")
    if options["UNREFERENCED_SWEEP_MODE"] not in ("report", "delete"):
        raise ConfigurationError(
            f"settings.S3STRATA['UNREFERENCED_SWEEP_MODE']={options['UNREFERENCED_SWEEP_MODE']!r} is invalid: "
            "use 'report' or 'delete'."
        )


def _check_restores(options: dict[str, Any]) -> None:
    """Refuse restore options no request could carry."""
    from .core.restore import check_restore_options
    from .core.types import RestoreOptions

    for name in ("RESTORE_POLL_INTERVAL", "RESTORE_POLL_BATCH"):
        value = options[name]
        if value is None and name == "RESTORE_POLL_INTERVAL":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"settings.S3STRATA[{name!r}]={value!r} is invalid: give a whole number of 1 or more.")
    try:
        check_restore_options(RestoreOptions(options["RESTORE_DAYS"], options["RESTORE_RETRIEVAL"]))
    except InvalidOptionError as exc:
        raise ConfigurationError(f"settings.S3STRATA['RESTORE_DAYS'/'RESTORE_RETRIEVAL']: {exc}") from None


def _import_hook(path: str) -> Any:
    """Return the callable ``settings.S3STRATA['ADVANCED']['OBJECT_PARAMETERS_HOOK']`` names by dotted path."""
    from django.utils.module_loading import import_string

    try:
        return import_string(path)
    except ImportError as exc:
        raise ConfigurationError(
            f"settings.S3STRATA['ADVANCED']['OBJECT_PARAMETERS_HOOK']={path!r} cannot be imported: {exc}"
        ) from None


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigurationError(f"{where} must be a dict, not {type(value).__name__}.")
    return value


def missing_keys(tier: StorageTier, missing: tuple[str, ...], per_tier: bool) -> list[str]:
    """Return the ``S3STRATA`` keys that set ``tier``'s missing fields (S3TierConfig's names)."""
    if per_tier:
        return [f"S3STRATA[{tier.value!r}][{f.upper()!r}]" for f in missing]
    shared = {"bucket": f"{tier.value}_BUCKET"}
    return [f"S3STRATA[{shared.get(f, f.upper())!r}]" for f in missing]


class DjangoS3StrataConfig(S3StrataConfig):
    """The S3StrataConfig read from ``settings.S3STRATA``: its errors name the setting's keys, not the core's fields."""

    def setting_names(self, tier: StorageTier, fields: tuple[str, ...]) -> list[str]:
        return missing_keys(tier, fields, (self.hot if tier is StorageTier.HOT else self.cold) is not None)

    def missing_message(self, tier: StorageTier, missing: tuple[str, ...]) -> str:
        keys = self.setting_names(tier, missing)
        return (
            f"The {tier.value} tier has no {', '.join(f.replace('_', ' ') for f in missing)}: set {', '.join(keys)} "
            "in settings.py (python manage.py check lists every missing key)."
        )


@dataclasses.dataclass(frozen=True)
class S3StrataSettings:
    """The parsed ``S3STRATA`` setting: the core config plus the Django-only options."""

    config: S3StrataConfig
    options: dict[str, Any]

    @functools.cached_property
    def layout(self) -> Layout:
        """Return which bucket is which tier and which prefix is which visibility (no S3 client)."""
        return Layout(self.config)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.options[name]
        except KeyError:
            raise AttributeError(name) from None


def parse(raw: Any) -> S3StrataSettings:
    """Return the S3StrataSettings for a raw ``S3STRATA`` dict, or raise ConfigurationError."""
    top = _mapping(raw if raw is not None else {}, "settings.S3STRATA")
    _refuse_unknown(top, set(_TOP) | {"HOT", "COLD", "ADVANCED"} | set(DJANGO_OPTIONS), "settings.S3STRATA")
    kwargs: dict[str, Any] = {_TOP[k]: v for k, v in top.items() if k in _TOP}
    for tier in ("HOT", "COLD"):
        if top.get(tier) is not None:
            block = _mapping(top[tier], f"settings.S3STRATA[{tier!r}]")
            _refuse_unknown(block, set(_TIER), f"settings.S3STRATA[{tier!r}]")
            missing = [k for k in ("ENDPOINT", "BUCKET") if k not in block]
            if missing:
                raise ConfigurationError(
                    f"settings.S3STRATA[{tier!r}] lacks {', '.join(missing)}: a tier sub-dict needs ENDPOINT and "
                    "BUCKET (and ACCESS_KEY with SECRET_KEY, or neither for boto3's default credential chain).",
                    tier=tier,
                    missing=tuple(m.lower() for m in missing),
                )
            kwargs[tier.lower()] = S3TierConfig(**{_TIER[k]: v for k, v in block.items()})
    advanced = _mapping(top.get("ADVANCED") or {}, "settings.S3STRATA['ADVANCED']")
    _refuse_unknown(advanced, set(_ADVANCED), "settings.S3STRATA['ADVANCED']")
    advanced = {_ADVANCED[k]: v for k, v in advanced.items()}
    if isinstance(advanced.get("object_parameters_hook"), str):
        advanced["object_parameters_hook"] = _import_hook(advanced["object_parameters_hook"])
    kwargs["advanced"] = S3StrataAdvancedOptions(**advanced)
    options = {k: top.get(k, default) for k, default in DJANGO_OPTIONS.items()}
    _check_direct_uploads(options)
    _check_downloads(options)
    _check_restores(options)
    try:
        parse_seconds(options["STORAGE_HOT_DURATION"], "settings.S3STRATA['STORAGE_HOT_DURATION']")
    except InvalidOptionError as exc:
        raise ConfigurationError(str(exc)) from None
    return S3StrataSettings(DjangoS3StrataConfig(**kwargs), options)


_cached: S3StrataSettings | None = None


def get_settings() -> S3StrataSettings:
    """Return the parsed ``S3STRATA`` setting (cached until ``reset``)."""
    global _cached
    if _cached is None:
        _cached = parse(getattr(settings, "S3STRATA", None))
    return _cached


def reset() -> None:
    """Forget the parsed settings (called when ``S3STRATA`` changes)."""
    global _cached
    _cached = None
