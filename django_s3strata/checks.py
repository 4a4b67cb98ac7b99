"""System checks: misconfigurations found without the network (s3strata.E0xx/W0xx), and a --deploy check that asks S3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .core.config import MAX_PRESIGN_EXPIRY, ResolvedTier, resolve_tier, tier_clash
from .core.exceptions import AccessDeniedError, BucketNotFoundError, ConfigurationError, S3StrataError
from .core.objectstore import ObjectStore
from .core.types import StorageTier

if TYPE_CHECKING:
    from .conf import S3StrataSettings

__all__ = ["UPLOAD_MARGIN", "check_buckets_exist", "check_direct_upload_urls", "check_public_read", "check_settings"]

#: How long after its grant expires a direct upload may still be finalised (seconds): the finalize
#: ticket lives DIRECT_UPLOAD_EXPIRES plus this hour. The orphan grace period must cover both, or
#: the sweep deletes (or adopts) an object whose upload has not been finalised yet.
UPLOAD_MARGIN = 3600

TASKS = {
    "django_s3strata.tasks.archive_expired_hot_files",
    "django_s3strata.tasks.sweep_orphans",
    "django_s3strata.tasks.verify_files",
    "django_s3strata.tasks.apply_file_action",
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
    """Check ``settings.S3STRATA`` and the Celery schedule without touching the network."""
    from . import conf

    messages: list[CheckMessage] = []
    raw = getattr(settings, "S3STRATA", None)
    try:
        parsed = conf.parse(raw)
    except ConfigurationError as exc:
        text = str(exc)
        if "expiration" in text:
            return [
                Error(
                    text,
                    hint=f"Set ADVANCED['DEFAULT_PRESIGNED_URL_EXPIRATION'] to at most {MAX_PRESIGN_EXPIRY} seconds (7 days).",
                    id="s3strata.E004",
                )
            ]
        return [Error(text, hint="Fix settings.S3STRATA as the message says.", id="s3strata.E001")]
    tiers: dict[StorageTier, ResolvedTier] = {}
    for tier in StorageTier:
        try:
            tiers[tier] = resolve_tier(parsed.config, tier)
        except ConfigurationError as exc:
            messages.append(_tier_message(tier, exc, raw))
    if len(tiers) == 2:
        messages.extend(_tier_errors(tiers))
        for tier in tiers.values():
            if not tier.use_ssl and tier.endpoint not in ("127.0.0.1", "localhost", "::1"):
                messages.append(
                    Warning(
                        f"The {tier.tier.value} tier talks to {tier.endpoint_url} without TLS: "
                        "credentials and presigned URLs travel in clear.",
                        hint="Set USE_SSL to True for a remote endpoint.",
                        id="s3strata.W001",
                    )
                )
    messages.extend(_grace_messages(parsed))
    messages.extend(_celery_schedule_messages())
    return messages


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


def _tier_message(tier: StorageTier, exc: ConfigurationError, raw: Any) -> CheckMessage:
    if exc.missing:
        from .conf import missing_keys

        block = isinstance(raw, dict) and isinstance(raw.get(tier.value), dict)
        keys = missing_keys(tier, exc.missing, block)
        return Error(
            f"The {tier.value} tier has no {', '.join(f.replace('_', ' ') for f in exc.missing)}: set {', '.join(keys)}.",
            hint=f"Set ENDPOINT, ACCESS_KEY, SECRET_KEY and {tier.value}_BUCKET in settings.S3STRATA, "
            f"or a {tier.value!r} sub-dict with ENDPOINT, ACCESS_KEY, SECRET_KEY and BUCKET.",
            id="s3strata.E002",
        )
    overlap = "overlap" in str(exc)
    return Error(
        str(exc),
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
        except AccessDeniedError as exc:
            # The bucket may well exist: S3 answers a HEAD of a bucket the keys may not read with 403.
            messages.append(
                Error(
                    f"{where} refused the credentials (HeadBucket answered {exc.code or 403}).",
                    hint=f"Check the {tier.value} tier's ACCESS_KEY and SECRET_KEY, and that their policy allows "
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
