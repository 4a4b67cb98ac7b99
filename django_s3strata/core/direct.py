"""Uploads that go from a client straight to S3: presigned POST policies, presigned PUTs and multipart part URLs.

The server picks the key, the size, the content type and its disposition; the client only gets
signatures bound to them. A POST policy pins the key (exactly, even when it ends in
``${filename}``), the Content-Type, the Content-Disposition and the exact length; a presigned PUT
(for providers without POST Object) signs the same values as headers; each multipart
part URL signs its ``Content-Length``, part URLs are signed in batches on demand
(``sign_parts``), and completing the upload checks the parts against the plan. Sizes stay within
S3's limits (5 MiB to 5 GiB parts, 10,000 parts, 5 TiB objects). Nothing here writes a record: the
caller checks the object (``head``) and records it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .config import MAX_PRESIGN_EXPIRY
from .exceptions import FileTooLargeError, InvalidOptionError, StorageError
from .objectparams import post_fields
from .objectstore import ObjectStore
from .types import StorageTier

__all__ = [
    "CORS_RULE_ID",
    "MAX_OBJECT_SIZE",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MAX_POST_SIZE",
    "MIN_PART_SIZE",
    "PART_BATCH",
    "LandedObject",
    "MultipartTarget",
    "PendingUpload",
    "PostTarget",
    "PutTarget",
    "abort_multipart",
    "apply_cors",
    "apply_tags",
    "complete_multipart",
    "cors_rule",
    "head",
    "iter_pending_uploads",
    "part_sizes",
    "presigned_post",
    "presigned_put",
    "sign_parts",
    "start_multipart",
]

#: S3's limits: one POST carries at most 5 GiB; a multipart upload has at most 10,000 parts of
#: 5 MiB (but the last) to 5 GiB each, and an object at most 5 TiB.
MAX_POST_SIZE = 5 * 1024**3
MAX_PARTS = 10_000
MIN_PART_SIZE = 5 * 1024**2
MAX_PART_SIZE = 5 * 1024**3
MAX_OBJECT_SIZE = 5 * 1024**4
#: Part URLs signed per request: a grant for 10,000 parts is not 10,000 signatures at once.
PART_BATCH = 100


@dataclass(frozen=True)
class PostTarget:
    """A presigned POST: send ``fields`` then the file as multipart/form-data to ``url``."""

    url: str
    fields: dict[str, str]


@dataclass(frozen=True)
class PutTarget:
    """A presigned PUT: send the file as the body to ``url`` with exactly ``headers`` (for providers without POST)."""

    url: str
    headers: dict[str, str]


@dataclass(frozen=True)
class MultipartTarget:
    """A started multipart upload: PUT part ``n`` (1-based) of ``sizes[n-1]`` bytes to ``urls[n-1]``.

    ``urls`` holds the first batch only (``PART_BATCH`` at most); ``sign_parts`` signs the rest.
    """

    upload_id: str
    part_size: int
    sizes: list[int]
    urls: list[str] = field(repr=False)


@dataclass(frozen=True)
class LandedObject:
    """What a HEAD tells about an uploaded object: what finalize compares with the grant."""

    size: int
    etag: str | None
    content_type: str | None
    content_disposition: str | None


@dataclass(frozen=True)
class PendingUpload:
    """A multipart upload that was started and neither completed nor aborted."""

    tier: StorageTier
    key: str
    upload_id: str
    initiated: datetime | None


def _check_expiry(expires_in: int) -> None:
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or not 1 <= expires_in <= MAX_PRESIGN_EXPIRY:
        raise InvalidOptionError(
            f"expires_in={expires_in!r} is invalid: give whole seconds from 1 to {MAX_PRESIGN_EXPIRY} (7 days, S3's limit)."
        )


def _check_size(size: int, max_size: float) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidOptionError(f"size={size!r} is invalid: give the file's length in bytes (a whole number, 0 or more).")
    if size > max_size:
        raise FileTooLargeError(size, max_size)


def _write_fields(
    store: ObjectStore,
    tier: StorageTier,
    content_type: str,
    disposition: str | None,
    filename: str | None = None,
    *,
    post: bool = True,
) -> dict[str, str]:
    """Return the fields (POST policy names) an upload must carry: what every other write to the tier sends too.

    Type (with its charset), disposition, storage class, encryption and the object parameters
    (through the hook, for ``filename``); no checksum, which a browser does not compute, and no
    tags (``apply_tags`` sets them once the object has landed).
    """
    return post_fields(store.write_arguments(tier, content_type, disposition, filename=filename, checksum=False), post=post)


def apply_tags(
    store: ObjectStore, tier: StorageTier, key: str, content_type: str, disposition: str | None, filename: str | None = None
) -> None:
    """Give a POST or PUT upload that landed at ``key`` the tags its tier (and the hook, for ``filename``) set, if any."""
    tagging = store.write_arguments(tier, content_type, disposition, filename=filename, checksum=False).get("Tagging")
    if tagging:
        store.put_tagging(tier, key, tagging)


def part_sizes(size: int, part_size: int) -> list[int]:
    """Return the part lengths of a ``size``-byte upload: ``part_size`` each, grown to fit 10,000 parts.

    Parts stay within S3's 5 MiB..5 GiB; an object over 5 TiB raises FileTooLargeError.
    """
    if size <= 0:
        raise InvalidOptionError("A multipart upload needs at least one byte: send empty files with a POST.")
    if size > MAX_OBJECT_SIZE:
        raise FileTooLargeError(size, MAX_OBJECT_SIZE)
    part = min(max(part_size, MIN_PART_SIZE, math.ceil(size / MAX_PARTS)), MAX_PART_SIZE)
    full, rest = divmod(size, part)
    return [part] * full + ([rest] if rest else [])


def presigned_post(
    store: ObjectStore,
    tier: StorageTier,
    key: str,
    *,
    size: int,
    content_type: str,
    expires_in: int,
    max_size: float = math.inf,
    content_disposition: str | None = None,
    filename: str | None = None,
) -> PostTarget:
    """Return a presigned POST for exactly ``size`` bytes of ``content_type`` at ``key`` (no network).

    With ``content_disposition`` the object must be sent with exactly that header value; the
    tier's encryption and object parameters (the hook's, for ``filename``) are pinned the same way.
    """
    _check_expiry(expires_in)
    _check_size(size, min(max_size, MAX_POST_SIZE))
    fields = _write_fields(store, tier, content_type, content_disposition, filename)
    # botocore turns the key condition into "starts-with" when the key ends in "${filename}": the
    # exact key is pinned here again, so S3 refuses any other key whatever the name.
    conditions: list[Any] = [
        ["content-length-range", size, size],
        {"key": key},
        *({name: value} for name, value in fields.items()),
    ]
    url, signed_fields = store.presigned_post(tier, key, fields, conditions, expires_in)
    return PostTarget(url, signed_fields)


def presigned_put(
    store: ObjectStore,
    tier: StorageTier,
    key: str,
    *,
    size: int,
    content_type: str,
    expires_in: int,
    max_size: float = math.inf,
    content_disposition: str | None = None,
    filename: str | None = None,
) -> PutTarget:
    """Return a presigned PUT of exactly ``size`` bytes of ``content_type`` at ``key`` (no network).

    For providers without POST Object (Cloudflare R2, Backblaze B2). Every header a POST policy
    would pin is a signed header of the PUT, and so is Content-Length: S3 refuses the upload
    unless it carries exactly those values.
    """
    _check_expiry(expires_in)
    _check_size(size, min(max_size, MAX_POST_SIZE))
    fields = _write_fields(store, tier, content_type, content_disposition, filename, post=False)
    url, headers = store.presigned_put(tier, key, fields, size, expires_in)
    return PutTarget(url, headers)


def start_multipart(
    store: ObjectStore,
    tier: StorageTier,
    key: str,
    *,
    size: int,
    content_type: str,
    part_size: int,
    expires_in: int,
    max_size: float = math.inf,
    content_disposition: str | None = None,
    filename: str | None = None,
) -> MultipartTarget:
    """Create a multipart upload at ``key`` and presign the first batch of PUTs, each bound to its part's length."""
    _check_expiry(expires_in)
    _check_size(size, min(max_size, MAX_OBJECT_SIZE))
    sizes = part_sizes(size, part_size)
    upload_id = store.create_multipart_upload(
        tier, key, content_type=content_type, content_disposition=content_disposition, filename=filename
    )
    urls = sign_parts(store, tier, key, upload_id, sizes, 1, min(len(sizes), PART_BATCH), expires_in)
    return MultipartTarget(upload_id, sizes[0], sizes, urls)


def sign_parts(
    store: ObjectStore, tier: StorageTier, key: str, upload_id: str, sizes: list[int], first: int, last: int, expires_in: int
) -> list[str]:
    """Return the signed PUT URLs of parts ``first``..``last`` (1-based, at most ``PART_BATCH``), no network."""
    _check_expiry(expires_in)
    for name, value in (("first", first), ("last", last)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidOptionError(f"{name}={value!r} is invalid: give a part number.")
    if not 1 <= first <= last <= len(sizes) or last - first >= PART_BATCH:
        raise InvalidOptionError(
            f"parts {first}..{last} are invalid: ask for parts from 1 to {len(sizes)}, at most {PART_BATCH} at a time."
        )
    numbered = [(number, sizes[number - 1]) for number in range(first, last + 1)]
    return store.presigned_part_urls(tier, key, upload_id, numbered, expires_in)


def head(store: ObjectStore, tier: StorageTier, key: str) -> LandedObject | None:
    """Return what S3 holds at ``key`` (size, type, disposition), or None when nothing has landed."""
    found = store.head_with_disposition(tier, key)
    if found is None:
        return None
    info, disposition = found
    return LandedObject(size=info.size, etag=info.etag, content_type=info.content_type, content_disposition=disposition)


def complete_multipart(store: ObjectStore, tier: StorageTier, key: str, upload_id: str, sizes: list[int]) -> None:
    """Complete ``upload_id`` from the parts S3 holds, after checking they match the planned ``sizes``.

    The client is not asked for ETags: S3's own part list is the truth. A missing or mis-sized
    part raises StorageError(code="IncompleteUpload") and leaves the upload open for a retry.
    """
    parts = store.uploaded_parts(tier, key, upload_id)

    def incomplete(why: str) -> StorageError:
        return StorageError(
            why,
            operation="CompleteMultipartUpload",
            tier=tier.value,
            bucket=store.tier(tier).bucket,
            key=key,
            code="IncompleteUpload",
        )

    for part in parts:
        if not 1 <= part.number <= len(sizes) or part.size != sizes[part.number - 1]:
            raise incomplete(
                f"Part {part.number} of {key!r} has {part.size} bytes; the plan has {len(sizes)} parts "
                f"of {sizes[0]} bytes. Upload the parts as planned."
            )
    numbers = sorted(part.number for part in parts)
    if numbers != list(range(1, len(sizes) + 1)):
        missing = sorted(set(range(1, len(sizes) + 1)) - set(numbers))
        raise incomplete(
            f"{len(missing)} of {len(sizes)} parts of {key!r} have not arrived (first missing: part {missing[0]}). "
            "Upload every part before finishing."
        )
    store.complete_multipart_upload(tier, key, upload_id, parts)


def abort_multipart(store: ObjectStore, tier: StorageTier, key: str, upload_id: str) -> None:
    """Abort ``upload_id`` and free its parts; an upload already gone is not an error."""
    try:
        store.abort_multipart_upload(tier, key, upload_id)
    except StorageError as exc:
        if exc.code != "NoSuchUpload":
            raise


def iter_pending_uploads(store: ObjectStore, tier: StorageTier, prefix: str | None = None) -> Iterator[PendingUpload]:
    """Yield the tier's unfinished multipart uploads (under ``prefix``), page by page."""
    for upload in store.iter_multipart_uploads(tier, prefix):
        yield PendingUpload(tier, upload.key, upload.upload_id, upload.initiated)


#: The ID of the CORS rule ``apply_cors`` manages; other rules of the bucket are kept.
CORS_RULE_ID = "S3StrataDirectUploads"


def cors_rule(origins: list[str], max_age: int = 3600) -> dict[str, Any]:
    """Return the CORS rule letting pages on ``origins`` POST and PUT uploads to a bucket."""
    bad = [origin for origin in origins if not (origin == "*" or origin.startswith(("https://", "http://")))]
    if not origins or bad:
        raise InvalidOptionError(
            f"Invalid origins {bad or origins!r}: give each site as scheme://host[:port], e.g. https://app.example.com."
        )
    return {
        "ID": CORS_RULE_ID,
        "AllowedOrigins": list(origins),
        "AllowedMethods": ["POST", "PUT"],
        "AllowedHeaders": ["*"],
        "ExposeHeaders": ["ETag"],
        "MaxAgeSeconds": max_age,
    }


def apply_cors(store: ObjectStore, tier: StorageTier, origins: list[str]) -> list[dict[str, Any]]:
    """Set (or replace) our CORS rule on the tier's bucket, keeping its other rules; return all rules."""
    rule = cors_rule(origins)
    rules = [kept for kept in store.cors_rules(tier) if kept.get("ID") != CORS_RULE_ID] + [rule]
    store.put_cors_rules(tier, rules)
    return rules
