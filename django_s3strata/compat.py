"""A migration path from django-storages: its S3 settings as an ``S3STRATA`` dict."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .core.exceptions import ConfigurationError

__all__ = ["settings_from_django_storages"]


def settings_from_django_storages(source: Any = None, *, cold_bucket: str | None = None) -> dict[str, Any]:
    """Return an ``S3STRATA`` dict built from django-storages' ``AWS_*`` settings (or a ``STORAGES`` OPTIONS dict).

    The existing bucket becomes HOT and its ``location`` the private prefix, so the names already
    stored in ``FileField`` columns resolve to the existing keys once the objects are adopted
    (``manage.py s3strata_orphans adopt --prefix <location>/``). ``cold_bucket`` names the archive.
    """
    if source is None:
        from django.conf import settings

        source = {k: getattr(settings, k) for k in dir(settings) if k.startswith("AWS_")}
    options = {k.lower().removeprefix("aws_"): v for k, v in dict(source).items()}
    bucket = options.get("storage_bucket_name") or options.get("bucket_name")
    if not bucket:
        raise ConfigurationError("django-storages settings name no bucket (AWS_STORAGE_BUCKET_NAME / bucket_name).")
    endpoint_url = options.get("s3_endpoint_url") or options.get("endpoint_url")
    result: dict[str, Any] = {
        "ACCESS_KEY": options.get("s3_access_key_id") or options.get("access_key_id") or options.get("access_key"),
        "SECRET_KEY": options.get("s3_secret_access_key") or options.get("secret_access_key") or options.get("secret_key"),
        "HOT_BUCKET": bucket,
        "COLD_BUCKET": cold_bucket or f"{bucket}-archive",
    }
    if endpoint_url:
        parts = urlsplit(endpoint_url)
        result.update(ENDPOINT=parts.hostname, USE_SSL=parts.scheme == "https")
        if parts.port:
            result["PORT"] = parts.port
    else:
        region = options.get("s3_region_name") or options.get("region_name")
        result["ENDPOINT"] = f"s3.{region}.amazonaws.com" if region else "s3.amazonaws.com"
    if options.get("s3_region_name") or options.get("region_name"):
        result["REGION"] = options.get("s3_region_name") or options.get("region_name")
    if options.get("s3_addressing_style") or options.get("addressing_style"):
        result["ADDRESSING_STYLE"] = options.get("s3_addressing_style") or options.get("addressing_style")
    location = str(options.get("location") or "").strip("/")
    if location:
        result["PRIVATE_HOT_PREFIX"] = result["PRIVATE_COLD_PREFIX"] = location
    if options.get("querystring_expire"):
        result["ADVANCED"] = {"DEFAULT_PRESIGNED_URL_EXPIRATION": int(options["querystring_expire"])}
    if options.get("s3_custom_domain") or options.get("custom_domain"):
        domain = options.get("s3_custom_domain") or options.get("custom_domain")
        result["HOT_PUBLIC_BASE_URL"] = f"https://{domain}"
    return {k: v for k, v in result.items() if v is not None}
