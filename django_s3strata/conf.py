"""Read ``settings.S3STRATA`` once, refuse unknown keys by name, and build the core configuration."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
from typing import Any

from django.conf import settings

from .core.config import S3StrataAdvancedOptions, S3StrataConfig, S3TierConfig, parse_seconds
from .core.exceptions import ConfigurationError, InvalidOptionError
from .core.layout import Layout
from .core.types import StorageTier

__all__ = [
    "DEFAULT",
    "DJANGO_OPTIONS",
    "GLOBAL_OPTIONS",
    "DjangoS3StrataConfig",
    "S3StrataSettings",
    "config_names",
    "default_block",
    "get_settings",
    "is_named",
    "missing_keys",
    "parse_all",
    "parse_one",
    "reset",
    "split",
]

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
    # (request, file) -> bool), how long the URL the view redirects to lasts (seconds),
    # "attachment" or "inline" when the link does not say, and how long a signed link (a token)
    # made without expires_in works (seconds; None: until SECRET_KEY changes).
    "DOWNLOAD_AUTHORIZE": None,
    "DOWNLOAD_URL_EXPIRES": 60,
    "DOWNLOAD_DISPOSITION": "attachment",
    "DOWNLOAD_TOKEN_MAX_AGE": 7 * 86400,
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


#: The configuration that the flat ``S3STRATA`` dict is, and that a row whose ``config`` is NULL belongs to.
DEFAULT = "default"

#: Options a project has once, whatever its configurations: one table, one download view, one
#: direct-upload endpoint. In the named shape they are set in ``S3STRATA['default']`` only.
GLOBAL_OPTIONS = frozenset({"SHARED_TABLE", *(k for k in DJANGO_OPTIONS if k.startswith(("DIRECT_UPLOAD_", "DOWNLOAD_")))})

#: A configuration's name: lowercase, so that it can never be taken for a flat key (all uppercase).
_NAME = re.compile(r"[a-z][a-z0-9_]*")


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
    max_age = options["DOWNLOAD_TOKEN_MAX_AGE"]
    if max_age is not None and (isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 1):
        raise ConfigurationError(
            f"settings.S3STRATA['DOWNLOAD_TOKEN_MAX_AGE']={max_age!r} is invalid: "
            "give whole seconds (1 or more), or None for signed links that never expire."
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


def missing_keys(tier: StorageTier, missing: tuple[str, ...], per_tier: bool, config: str | None = None) -> list[str]:
    """Return the ``S3STRATA`` keys that set ``tier``'s missing fields (S3TierConfig's names).

    ``config`` names the configuration in the named shape (``S3STRATA['exports'][...]``).
    """
    top = "S3STRATA" if config is None else f"S3STRATA[{config!r}]"
    if per_tier:
        return [f"{top}[{tier.value!r}][{f.upper()!r}]" for f in missing]
    shared = {"bucket": f"{tier.value}_BUCKET"}
    return [f"{top}[{shared.get(f, f.upper())!r}]" for f in missing]


class DjangoS3StrataConfig(S3StrataConfig):
    """The S3StrataConfig read from ``settings.S3STRATA``: its errors name the setting's keys, not the core's fields."""

    #: The configuration's name in the named shape (None: the flat dict); set by ``parse``.
    setting_config: str | None = None

    def setting_names(self, tier: StorageTier, fields: tuple[str, ...]) -> list[str]:
        per_tier = (self.hot if tier is StorageTier.HOT else self.cold) is not None
        return missing_keys(tier, fields, per_tier, self.setting_config)

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
    #: The configuration's name ("default" for the flat dict).
    name: str = DEFAULT

    @functools.cached_property
    def layout(self) -> Layout:
        """Return which bucket is which tier and which prefix is which visibility (no S3 client)."""
        return Layout(self.config)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.options[name]
        except KeyError:
            raise AttributeError(name) from None


def is_named(raw: Any) -> bool:
    """Return True when ``raw`` names configurations: a dict with a ``"default"`` key (no flat key is lowercase)."""
    return isinstance(raw, dict) and DEFAULT in raw


def split(raw: Any) -> dict[str, Any]:
    """Return {configuration name: its raw dict}; the flat shape is ``{"default": raw}``.

    The named shape is told apart by its ``"default"`` key; every key of it must then be a
    lowercase name holding a dict, and the global options (``GLOBAL_OPTIONS``) may be set in
    ``"default"`` only. Raise ConfigurationError otherwise, naming the key.
    """
    if not is_named(raw):
        return {DEFAULT: raw}
    known = set(_TOP) | {"HOT", "COLD", "ADVANCED"} | set(DJANGO_OPTIONS)
    flat = sorted(str(k) for k in raw if k in known)
    if flat:
        raise ConfigurationError(
            f"settings.S3STRATA names configurations ('default', ...) and also has the flat key(s) {', '.join(flat)}: "
            "in the named shape every top-level key is a configuration; move them into S3STRATA['default']."
        )
    for name, block in raw.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigurationError(
                f"settings.S3STRATA[{name!r}]: a configuration name is lowercase letters, digits and '_', "
                "starting with a letter (uppercase keys belong inside a configuration)."
            )
        _mapping(block, f"settings.S3STRATA[{name!r}]")
        if name != DEFAULT:
            shared = sorted(k for k in block if k in GLOBAL_OPTIONS)
            if shared:
                raise ConfigurationError(
                    f"settings.S3STRATA[{name!r}] sets {', '.join(shared)}, which the project has once: "
                    "set it in S3STRATA['default'] (docs/django.md, 'Several bucket pairs')."
                )
    return dict(raw)


def default_block(raw: Any) -> dict[str, Any]:
    """Return the raw dict of the default configuration (``{}`` when there is none or it is not a dict)."""
    block = raw.get(DEFAULT) if is_named(raw) else raw
    return block if isinstance(block, dict) else {}


def _renamed(exc: ConfigurationError, name: str) -> ConfigurationError:
    """Return ``exc`` with every ``S3STRATA`` it names moved under configuration ``name``."""
    text = str(exc).replace("S3STRATA", f"S3STRATA[{name!r}]")
    return ConfigurationError(text, tier=exc.tier, missing=exc.missing)


def parse_all(raw: Any) -> dict[str, S3StrataSettings]:
    """Return {name: S3StrataSettings} for a raw ``S3STRATA`` setting of either shape, or raise ConfigurationError."""
    blocks = split(raw)
    if not is_named(raw):
        return {DEFAULT: parse(raw)}
    return {name: parse_one(raw, name) for name in blocks}


def parse_one(raw: Any, name: str) -> S3StrataSettings:
    """Return configuration ``name`` of a raw ``S3STRATA`` setting already ``split``; errors name ``S3STRATA[name]``."""
    if not is_named(raw):
        return parse(raw)
    block = raw[name]
    # A global option is the default configuration's in every configuration.
    shared = {k: v for k, v in default_block(raw).items() if k in GLOBAL_OPTIONS}
    try:
        return parse(block if name == DEFAULT else {**block, **shared}, name)
    except ConfigurationError as exc:
        raise _renamed(exc, name) from None


def parse(raw: Any, name: str | None = None) -> S3StrataSettings:
    """Return the S3StrataSettings for one flat ``S3STRATA`` dict (configuration ``name``), or raise ConfigurationError."""
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
    config = DjangoS3StrataConfig(**kwargs)
    if name is not None:
        object.__setattr__(config, "setting_config", name)  # the dataclass may be frozen: the name is no field
    return S3StrataSettings(config, options, name or DEFAULT)


_cached: dict[str, S3StrataSettings] | None = None


def _all() -> dict[str, S3StrataSettings]:
    global _cached
    if _cached is None:
        _cached = parse_all(getattr(settings, "S3STRATA", None))
    return _cached


def config_names() -> list[str]:
    """Return the configurations' names, ``"default"`` first."""
    return sorted(_all(), key=lambda n: (n != DEFAULT, n))


def get_settings(name: str | None = None) -> S3StrataSettings:
    """Return the parsed settings of configuration ``name`` (None: ``"default"``), cached until ``reset``."""
    parsed = _all()
    try:
        return parsed[name or DEFAULT]
    except KeyError:
        raise ConfigurationError(
            f"settings.S3STRATA has no configuration named {name!r}; it has: {', '.join(config_names())}."
        ) from None


def reset() -> None:
    """Forget the parsed settings (called when ``S3STRATA`` changes)."""
    global _cached
    _cached = None
