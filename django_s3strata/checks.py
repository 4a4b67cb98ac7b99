"""System checks: misconfigurations found without the network (s3strata.E0xx/W0xx), and a --deploy check that asks S3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Tags, Warning, register

from .core.config import MAX_PRESIGN_EXPIRY, ResolvedTier, resolve_tier, tier_clash
from .core.exceptions import AccessDeniedError, BucketNotFoundError, ConfigurationError, CredentialsError, S3StrataError
from .core.objectstore import ObjectStore
from .core.types import StorageTier

if TYPE_CHECKING:
    from .conf import S3StrataSettings

__all__ = [
    "UPLOAD_MARGIN",
    "check_buckets_exist",
    "check_credentials",
    "check_direct_upload_urls",
    "check_field_configurations",
    "check_minimum_archive_durations",
    "check_public_read",
    "check_settings",
    "check_versioning",
]

#: How long after its grant expires a direct upload may still be finalised (seconds): the finalize
#: ticket lives DIRECT_UPLOAD_EXPIRES plus this hour. The orphan grace period must cover both, or
#: the sweep deletes (or adopts) an object whose upload has not been finalised yet.
UPLOAD_MARGIN = 3600

TASKS = {
    "django_s3strata.tasks.archive_expired_hot_files",
    "django_s3strata.tasks.sweep_orphans",
    "django_s3strata.tasks.verify_files",
    "django_s3strata.tasks.apply_file_action",
    "django_s3strata.tasks.sweep_unreferenced",
    "django_s3strata.tasks.restore_files",
    "django_s3strata.tasks.complete_restores",
}


def _tier_errors(tiers: dict[StorageTier, ResolvedTier]) -> list[CheckMessage]:
    clash = tier_clash(tiers[StorageTier.HOT], tiers[StorageTier.COLD])
    if clash is None:
        return []
    return [
        Error(
            clash,
            hint="Set different HOT_BUCKET and COLD_BUCKET, or distinct prefixes per tier "
            "(PUBLIC_HOT_PREFIX, PRIVATE_HOT_PREFIX, PUBLIC_COLD_PREFIX, PRIVATE_COLD_PREFIX).",
            id="s3strata.E003",
        )
    ]


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Check ``settings.S3STRATA`` (each configuration of it) and the Celery schedule without touching the network."""
    from . import conf

    raw = getattr(settings, "S3STRATA", None)
    try:
        names = list(conf.split(raw))
    except ConfigurationError as exc:
        return [Error(str(exc), hint="Fix settings.S3STRATA as the message says.", id="s3strata.E001")]
    messages: list[CheckMessage] = []
    resolved: dict[str, dict[StorageTier, ResolvedTier]] = {}
    for name in names:
        found, tiers = _check_configuration(raw, name if conf.is_named(raw) else None)
        messages.extend(found)
        resolved[name] = tiers
    messages.extend(_shared_bucket_errors(resolved))
    messages.extend(_celery_schedule_messages())
    return messages


@register(Tags.compatibility)
def check_field_configurations(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn of each field or storage that names a configuration ``S3STRATA`` does not have.

    A warning, not an error: a project may leave a configuration out of one environment's settings
    (and ``makemigrations`` runs the checks); a file stored there raises ConfigurationError naming it.
    """
    from django.apps import apps
    from django.db import models

    from . import conf
    from .fields import PhysicalFileField
    from .storage import S3StrataStorage

    raw = getattr(settings, "S3STRATA", None)
    if raw is None:
        return []  # nothing configured yet: the settings are set per environment (and per test)
    try:
        names = list(conf.split(raw))
    except ConfigurationError:
        return []  # reported by check_settings
    messages: list[CheckMessage] = []
    for model in apps.get_models():
        for f in model._meta.concrete_fields:
            if isinstance(f, PhysicalFileField):
                config = f.config
            elif isinstance(f, models.FileField) and isinstance(f.storage, S3StrataStorage):
                config = f.storage.config
            else:
                continue
            if config not in names:
                messages.append(
                    Warning(
                        f"{model._meta.label}.{f.name} names the S3STRATA configuration {config!r}, which settings.S3STRATA "
                        f"does not have (it has: {', '.join(names)}).",
                        hint=f"Add S3STRATA[{config!r}], or name one of the configurations there are.",
                        obj=f,
                        id="s3strata.W008",
                    )
                )
    return messages


def _shared_bucket_errors(resolved: dict[str, dict[StorageTier, ResolvedTier]]) -> list[CheckMessage]:
    """Refuse two configurations on one bucket: each one's orphan sweep would take the other's objects for orphans."""
    seen: dict[tuple[str, str], str] = {}
    messages: list[CheckMessage] = []
    for name, tiers in resolved.items():
        for tier in {(t.endpoint_url, t.bucket): t for t in tiers.values()}.values():
            other = seen.setdefault((tier.endpoint_url, tier.bucket), name)
            if other != name:
                messages.append(
                    Error(
                        f"S3STRATA[{other!r}] and S3STRATA[{name!r}] both use the bucket {tier.bucket!r} at {tier.endpoint_url}: "
                        f"each configuration's orphan sweep would take the other's objects for orphans.",
                        hint="Give each configuration buckets of its own.",
                        id="s3strata.E012",
                    )
                )
    return messages


def _check_configuration(raw: Any, name: str | None) -> tuple[list[CheckMessage], dict[StorageTier, ResolvedTier]]:
    """Return the messages of one configuration (``name`` None: the flat dict) and its resolved tiers."""
    from . import conf

    messages: list[CheckMessage] = []
    where = "" if name is None else f"S3STRATA[{name!r}]: "
    try:
        parsed = conf.parse_one(raw, name or conf.DEFAULT)
    except ConfigurationError as exc:
        text = str(exc)
        if "expiration" in text:
            hint = f"Set ADVANCED['DEFAULT_PRESIGNED_URL_EXPIRATION'] to at most {MAX_PRESIGN_EXPIRY} seconds (7 days)."
            return [Error(text if where in text else where + text, hint=hint, id="s3strata.E004")], {}
        return [Error(text, hint="Fix settings.S3STRATA as the message says.", id="s3strata.E001")], {}
    tiers: dict[StorageTier, ResolvedTier] = {}
    block = conf.default_block(raw) if name is None else raw[name]
    for tier in StorageTier:
        try:
            tiers[tier] = resolve_tier(parsed.config, tier)
        except ConfigurationError as exc:
            messages.append(_tier_message(tier, exc, block, name))
    if len(tiers) == 2:
        messages.extend(_named(m, where) for m in _tier_errors(tiers))
        for tier in tiers.values():
            if not tier.use_ssl and tier.endpoint not in ("127.0.0.1", "localhost", "::1"):
                messages.append(
                    Warning(
                        f"{where}The {tier.tier.value} tier talks to {tier.endpoint_url} without TLS: "
                        "credentials and presigned URLs travel in clear.",
                        hint="Set USE_SSL to True for a remote endpoint.",
                        id="s3strata.W001",
                    )
                )
    messages.extend(_named(m, where) for m in _grace_messages(parsed))
    return messages, tiers if len(tiers) == 2 else {}


def _named(message: CheckMessage, where: str) -> CheckMessage:
    """Return ``message`` with its configuration (``S3STRATA['exports']: ``) in front, unless it names it already."""
    if where and where.rstrip(": ") not in message.msg:
        message.msg = where + message.msg
    return message


def _grace_messages(parsed: S3StrataSettings) -> list[CheckMessage]:
    grace = parsed.config.advanced.orphan_grace_period
    expires = parsed.options["DIRECT_UPLOAD_EXPIRES"]
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (grace, expires)):
        return []  # not numbers: the code that reads them refuses them by name
    window = expires + UPLOAD_MARGIN
    if grace >= window:
        return []
    return [
        Error(
            f"ADVANCED['ORPHAN_GRACE_PERIOD'] is {grace} seconds, shorter than the upload window of {window} seconds "
            f"(DIRECT_UPLOAD_EXPIRES {expires} plus {UPLOAD_MARGIN} to finalise): "
            "the orphan sweep would delete direct uploads that are not finalised yet.",
            hint=f"Set ADVANCED['ORPHAN_GRACE_PERIOD'] to at least {window} seconds (the default is 86400), "
            "or lower DIRECT_UPLOAD_EXPIRES.",
            id="s3strata.E007",
        )
    ]


def _tier_message(tier: StorageTier, exc: ConfigurationError, raw: Any, name: str | None = None) -> CheckMessage:
    if exc.missing:
        from .conf import missing_keys

        block = isinstance(raw, dict) and isinstance(raw.get(tier.value), dict)
        keys = missing_keys(tier, exc.missing, block, name)
        return Error(
            f"The {tier.value} tier has no {', '.join(f.replace('_', ' ') for f in exc.missing)}: set {', '.join(keys)}.",
            hint=f"Set ENDPOINT and {tier.value}_BUCKET in settings.S3STRATA, or a {tier.value!r} sub-dict with "
            "ENDPOINT and BUCKET. Credentials: ACCESS_KEY with SECRET_KEY (SESSION_TOKEN only with both), "
            "or none of them for boto3's default credential chain (PROFILE names a shared-config profile).",
            id="s3strata.E002",
        )
    overlap = "overlap" in str(exc)
    where = "" if name is None or f"S3STRATA[{name!r}]" in str(exc) else f"S3STRATA[{name!r}]: "
    return Error(
        where + str(exc),
        hint=f"Give the {tier.value} tier distinct public and private prefixes."
        if overlap
        else "Fix settings.S3STRATA as the message says.",
        id="s3strata.E005" if overlap else "s3strata.E001",
    )


def _celery_schedule_messages() -> list[CheckMessage]:
    schedule = getattr(settings, "CELERY_BEAT_SCHEDULE", None) or {}
    messages: list[CheckMessage] = []
    for entry_name, entry in schedule.items():
        task = entry.get("task") if isinstance(entry, dict) else None
        if isinstance(task, str) and task.startswith("django_s3strata.") and task not in TASKS:
            messages.append(
                Error(
                    f"CELERY_BEAT_SCHEDULE[{entry_name!r}] names the task {task!r}, which django_s3strata does not have.",
                    hint=f"Use one of: {', '.join(sorted(TASKS))}.",
                    id="s3strata.E006",
                )
            )
    return messages


def _object_store() -> ObjectStore | None:
    """Return the process-wide manager's ObjectStore, or None when the settings cannot build one."""
    from .services import get_file_manager

    try:
        return get_file_manager().objectstore
    except S3StrataError:
        return None


@register(Tags.compatibility, deploy=True)
def check_buckets_exist(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """With ``check --deploy``: ask S3 whether both buckets exist and the credentials work."""
    store = _object_store()
    if store is None:
        return []  # reported by check_settings
    messages: list[CheckMessage] = []
    for tier in StorageTier:
        resolved = store.tier(tier)
        where = f"The {tier.value} bucket {resolved.bucket!r} at {resolved.endpoint_url}"
        try:
            store.require_bucket(tier)
        except CredentialsError:
            continue  # no credentials at all: reported by check_credentials
        except AccessDeniedError as exc:
            # The bucket may well exist: S3 answers a HEAD of a bucket the keys may not read with 403.
            keys = "ACCESS_KEY and SECRET_KEY" if resolved.access_key else f"credentials ({resolved.describe_credentials()})"
            messages.append(
                Error(
                    f"{where} refused the credentials (HeadBucket answered {exc.code or 403}).",
                    hint=f"Check the {tier.value} tier's {keys}, and that their policy allows "
                    f"s3:ListBucket on {resolved.bucket!r}, which HeadBucket needs.",
                    id="s3strata.E010",
                )
            )
        except BucketNotFoundError:
            messages.append(
                Error(
                    f"{where} does not exist.",
                    hint=f"Create the bucket {resolved.bucket!r} at {resolved.endpoint_url}, or name one that exists "
                    f"in S3STRATA['{tier.value}_BUCKET'] (or S3STRATA['{tier.value}']['BUCKET']).",
                    id="s3strata.E010",
                )
            )
        except S3StrataError as exc:
            messages.append(
                Error(
                    f"{where} did not answer: {exc}",
                    hint=f"Check the {tier.value} tier's ENDPOINT, PORT and USE_SSL, and that the server is reachable from here.",
                    id="s3strata.E010",
                )
            )
    return messages


@register(Tags.compatibility, deploy=True)
def check_public_read(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """With ``check --deploy``: warn when anyone cannot read a tier's public prefix, so PUBLIC URLs answer 403.

    Reads each bucket's policy (GetBucketPolicy) and looks for an Allow of s3:GetObject to
    Principal "*" on the public prefix; it writes nothing. An anonymous GET of a probe would need
    an object to exist there (S3 answers 403, not 404, for a missing key to anyone who may not
    list the bucket), so it could only be tested by writing one. A tier served through
    PUBLIC_BASE_URL (a CDN) is skipped, and so is a bucket whose policy cannot be read.
    """
    store = _object_store()
    if store is None:
        return []  # reported by check_settings
    messages: list[CheckMessage] = []
    for tier in StorageTier:
        resolved = store.tier(tier)
        if resolved.public_base_url:
            continue  # a CDN in front may read the bucket with its own identity
        try:
            policy = store.bucket_policy(tier)
        except S3StrataError:
            continue  # a bucket that does not answer is E010; keys without s3:GetBucketPolicy cannot tell
        if store.grants_public_read(tier, policy):
            continue
        messages.append(
            Warning(
                f"The {tier.value} bucket {resolved.bucket!r} does not let anyone read {resolved.public_prefix}/* "
                f"({'it has no bucket policy' if policy is None else 'its bucket policy does not allow it'}): "
                "the direct URLs of PUBLIC files answer 403.",
                hint=f"Run python manage.py s3strata_public_policy --tier {tier.value} (it replaces the bucket policy "
                "with one allowing s3:GetObject on the public prefix only; --dry-run shows it). If you keep no PUBLIC "
                'files, add "s3strata.W004" to SILENCED_SYSTEM_CHECKS.',
                id="s3strata.W004",
            )
        )
    return messages


def _expires_noncurrent(rules: list[dict[str, Any]], prefixes: list[str]) -> bool:
    """Return True when an enabled rule expires noncurrent versions of every key under ``prefixes``.

    A rule limited to tagged objects or to a size range does not count: untagged files would keep
    their old versions.
    """
    for rule in rules:
        if rule.get("Status") != "Enabled" or not rule.get("NoncurrentVersionExpiration"):
            continue
        where = rule.get("Filter") or {}
        both = where.get("And") or {}
        if any(name in where or name in both for name in ("Tag", "Tags", "ObjectSizeGreaterThan", "ObjectSizeLessThan")):
            continue
        prefix = where.get("Prefix", both.get("Prefix", rule.get("Prefix", ""))) or ""
        if all(p.startswith(prefix) for p in prefixes):
            return True
    return False


@register(Tags.compatibility, deploy=True)
def check_versioning(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """With ``check --deploy``: warn when a tier's bucket keeps versions that nothing ever expires.

    On a versioned bucket a delete only adds a delete marker, and an archived or replaced file's
    bytes stay as a noncurrent version: they keep costing until a lifecycle rule with
    NoncurrentVersionExpiration removes them. Reads GetBucketVersioning and the lifecycle rules;
    a bucket that does not answer them (no permission, a provider without them) is skipped.
    """
    store = _object_store()
    if store is None:
        return []  # reported by check_settings
    messages: list[CheckMessage] = []
    seen: set[tuple[str, str]] = set()
    for tier in StorageTier:
        resolved = store.tier(tier)
        try:
            if store.bucket_versioning(tier) != "Enabled":
                continue
            rules = store.lifecycle_rules(tier)
        except S3StrataError:
            continue  # no permission, or a provider without versioning: nothing to say
        prefixes = [f"{resolved.public_prefix}/", f"{resolved.private_prefix}/"]
        if _expires_noncurrent(rules, prefixes) or (resolved.endpoint_url, resolved.bucket) in seen:
            continue
        seen.add((resolved.endpoint_url, resolved.bucket))
        messages.append(
            Warning(
                f"The {tier.value} bucket {resolved.bucket!r} has versioning enabled and no lifecycle rule that "
                f"expires noncurrent versions under {' and '.join(prefixes)}: every deleted, archived or replaced "
                "file keeps its bytes (and its cost) as an old version forever.",
                hint="Add a lifecycle rule with NoncurrentVersionExpiration (e.g. NoncurrentDays 30) and "
                "Expiration ExpiredObjectDeleteMarker to the bucket (docs/providers.md, Versioned buckets), "
                "or suspend versioning if you do not need it.",
                id="s3strata.W005",
            )
        )
    return messages


@register(Tags.compatibility, deploy=True)
def check_credentials(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """With ``check --deploy``: say where each tier's credentials come from; warn about static keys in settings.

    Loads the credentials as the tiers' clients do (boto3's chain may ask a credentials endpoint once)
    and reports botocore's name for their source ("explicit" for keys in the settings; "env",
    "shared-credentials-file", "sso", "assume-role-with-web-identity", "container-role", "iam-role" ...).
    """
    store = _object_store()
    if store is None:
        return []  # reported by check_settings
    messages: list[CheckMessage] = []
    for tier in StorageTier:
        resolved = store.tier(tier)
        try:
            method = store.credential_method(tier)
        except S3StrataError as exc:
            method, failure = None, str(exc)
        else:
            failure = "boto3's default credential chain found none"
        if method is None:
            messages.append(
                Error(
                    f"The {tier.value} tier has no credentials: {failure}.",
                    hint="Set ACCESS_KEY and SECRET_KEY, or give boto3's chain credentials: an instance profile, "
                    "an ECS task role, EKS IRSA (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE), PROFILE, or "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment.",
                    id="s3strata.E011",
                )
            )
            continue
        messages.append(
            Info(
                f"The {tier.value} tier signs with {resolved.describe_credentials()} (botocore: {method!r}).",
                id="s3strata.I001",
            )
        )
        if resolved.access_key is not None:
            [key] = store.config.setting_names(tier, ("access_key",))
            messages.append(
                Warning(
                    f"The {tier.value} tier uses static keys from the settings ({key}): long-lived keys in settings "
                    "leak with the settings file and do not rotate.",
                    hint="On AWS, leave ACCESS_KEY and SECRET_KEY out and grant the instance profile, ECS task role or "
                    "EKS service account (IRSA) access; elsewhere read them from the environment or a secret store. "
                    "An S3-compatible server with static keys only: add 's3strata.W006' to SILENCED_SYSTEM_CHECKS.",
                    id="s3strata.W006",
                )
            )
    return messages


@register(Tags.urls)
def check_direct_upload_urls(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Warn when a field asks for direct uploads but the URLconf lacks ``django_s3strata.urls``."""
    from django.apps import apps
    from django.urls import NoReverseMatch, reverse

    from .fields import PhysicalFileField

    fields = [
        f"{model._meta.label}.{field.name}"
        for model in apps.get_models()
        for field in model._meta.get_fields()
        if isinstance(field, PhysicalFileField) and field.direct_upload
    ]
    if not fields:
        return []
    messages: list[CheckMessage] = []
    one = len(fields) == 1
    named = f"The field{'' if one else 's'} {', '.join(fields)} {'has' if one else 'have'} direct_upload=True"
    try:
        reverse("s3strata:direct-upload")
    except NoReverseMatch:
        messages.append(
            Warning(
                f"{named}, but the URLconf does not include django_s3strata.urls: "
                f"{'its form sends' if one else 'their forms send'} files through Django instead of straight to S3.",
                hint='Add path("s3strata/", include("django_s3strata.urls")) to your urlpatterns.',
                id="s3strata.W002",
            )
        )
    if "django_s3strata.middleware.DirectUploadMiddleware" not in (getattr(settings, "MIDDLEWARE", None) or []):
        messages.append(
            Warning(
                f"{named}, but DirectUploadMiddleware is not installed: "
                f"{'its form checks' if one else 'their forms check'} a direct upload's signed reference, "
                "not that the user who submits the form uploaded the file.",
                hint='Add "django_s3strata.middleware.DirectUploadMiddleware" to MIDDLEWARE, after AuthenticationMiddleware.',
                id="s3strata.W003",
            )
        )
    return messages


@register(Tags.compatibility, deploy=True)
def check_minimum_archive_durations(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """With ``check --deploy``: warn when objects would leave an archive class before S3's minimum storage duration.

    S3 bills GLACIER objects for at least 90 days and DEEP_ARCHIVE ones for 180: one deleted or
    moved out sooner is charged for the days left (the early-deletion charge). Found from the
    settings alone: a HOT tier writing an archive class that archival empties after the hot
    duration, and unreferenced COLD files deleted after a shorter grace period.
    """
    from .conf import get_settings
    from .core.restore import ARCHIVE_CLASSES

    try:
        parsed = get_settings()
    except S3StrataError:
        return []  # check_settings reports it
    options, day = parsed.options, 86400
    messages: list[CheckMessage] = []

    def early(tier: StorageTier, leaves_after: float, how: str) -> None:
        storage_class = (parsed.layout.tiers[tier].storage_class or "").upper()
        minimum = ARCHIVE_CLASSES.get(storage_class)
        if minimum is None or leaves_after >= minimum * day:
            return
        messages.append(
            Warning(
                f"The {tier.value} tier writes {storage_class}, which S3 bills for at least {minimum} days, but {how} "
                f"after about {leaves_after / day:.1f} days: each such object is charged the early-deletion fee for the "
                f"{minimum} days less the days it stayed (docs/archive.md).",
                hint=f"Keep objects at least {minimum} days in {storage_class}, or write a class without a minimum "
                "duration there (STANDARD_IA has 30 days, GLACIER_IR 90 but no restore).",
                id="s3strata.W007",
            )
        )

    if options["ARCHIVE_INTERVAL"]:
        hot = options["STORAGE_HOT_DURATION"]
        early(
            StorageTier.HOT,
            (hot or 0) + options["ARCHIVE_INTERVAL"],
            "archival (ARCHIVE_INTERVAL, STORAGE_HOT_DURATION) moves them to COLD",
        )
    if options["UNREFERENCED_SWEEP_INTERVAL"] and options["UNREFERENCED_SWEEP_MODE"] == "delete":
        early(StorageTier.COLD, options["UNREFERENCED_GRACE"], "the unreferenced sweep (UNREFERENCED_GRACE) deletes them")
    return messages
