"""Building and parsing object keys ``{prefix}/{suffix}``, and refusing unsafe names."""

from __future__ import annotations

import posixpath
import unicodedata
import uuid

from .config import ResolvedTier
from .exceptions import InvalidKeyError
from .types import FileVisibility

__all__ = [
    "MAX_KEY_BYTES",
    "build_key",
    "check_key",
    "clean_filename",
    "default_suffix",
    "normalize_name",
    "split_key",
    "unique_suffix",
    "validate_suffix",
]

#: S3 refuses keys longer than 1,024 bytes of UTF-8.
MAX_KEY_BYTES = 1024


def normalize_name(name: str) -> str:
    """Return ``name`` in Unicode NFC, the one form keys and stored names take.

    macOS sends file names decomposed (NFD: "e" + U+0301); the same name composed (NFC: U+00E9) is
    a different S3 key. Every name is stored, and looked up, in NFC.
    """
    return unicodedata.normalize("NFC", name)


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in text)


def clean_filename(filename: str) -> str:
    """Return ``filename`` NFC-normalised, or raise InvalidKeyError if it is empty or has control characters."""
    if not isinstance(filename, str):
        raise InvalidKeyError(f"filename must be a string, not {type(filename).__name__}.")
    name = normalize_name(filename)
    if not name.strip():
        raise InvalidKeyError("filename is empty: give a name such as 'report.pdf', or leave it out for a generated one.")
    if _has_control(name):
        raise InvalidKeyError(f"filename {filename!r} contains control characters (NUL, newline, ...): remove them.")
    return name


def default_suffix(filename: str) -> str:
    """Return upstream's default key suffix ``{uuid4}-{filename}``, with path separators made harmless."""
    safe = filename.replace("/", "_").replace("\\", "_")
    return f"{uuid.uuid4()}-{safe}"


def unique_suffix(name: str) -> tuple[str, str]:
    """Return (basename, ``{directory}/{uuid4}-{basename}``), both NFC, for a relative name like ``docs/2026/a.pdf``."""
    directory, basename = posixpath.split(normalize_name(name).replace("\\", "/"))
    unique = f"{uuid.uuid4()}-{basename}"
    return basename, posixpath.join(directory, unique) if directory else unique


def validate_suffix(suffix: str) -> str:
    """Return ``suffix`` NFC-normalised, or raise InvalidKeyError if it could escape its prefix."""
    if not isinstance(suffix, str):
        raise InvalidKeyError(f"path_suffix must be a string, not {type(suffix).__name__}.")
    text = normalize_name(suffix)
    if not text:
        raise InvalidKeyError("path_suffix is empty: give a relative key such as 'invoices/2026/a.pdf', or leave it out.")
    if _has_control(text):
        raise InvalidKeyError(f"path_suffix {suffix!r} contains control characters: remove them.")
    if "\\" in text:
        raise InvalidKeyError(f"path_suffix {suffix!r} contains '\\': use '/' to separate segments.")
    if text.startswith("/"):
        raise InvalidKeyError(f"path_suffix {suffix!r} is absolute: give it without the leading '/'.")
    if any(part in ("", ".", "..") for part in text.split("/")):
        raise InvalidKeyError(f"path_suffix {suffix!r} has an empty, '.' or '..' segment: keys must stay inside their prefix.")
    return text


def build_key(tier: ResolvedTier, visibility: FileVisibility, suffix: str) -> str:
    """Return ``{prefix}/{suffix}`` for the tier and visibility, refusing keys S3 cannot store."""
    key = f"{tier.prefix(visibility)}/{suffix}"
    size = len(key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise InvalidKeyError(f"The key would be {size} bytes; S3 allows {MAX_KEY_BYTES}. Use a shorter filename or path_suffix.")
    return key


def split_key(tier: ResolvedTier, path: str) -> tuple[FileVisibility, str]:
    """Return the visibility and suffix of ``path`` by the tier's configured prefixes."""
    for visibility in (FileVisibility.PUBLIC, FileVisibility.PRIVATE):
        head = tier.prefix(visibility) + "/"
        if path.startswith(head) and len(path) > len(head):
            return visibility, path[len(head) :]
    raise InvalidKeyError(
        f"Path {path!r} is under neither of the {tier.tier.value} tier's prefixes "
        f"({tier.public_prefix!r}, {tier.private_prefix!r}): its visibility is unknown. "
        "Check the prefix settings or fix the record's path."
    )


def check_key(tier: ResolvedTier, key: str) -> FileVisibility:
    """Return the visibility of ``key``, or raise InvalidKeyError unless it lies inside one of the tier's prefixes.

    For keys that come from outside (a form, a request): the part after the prefix must be a safe
    suffix too, so ``public/../backups/db.sql.gz`` is refused, not only ``backups/db.sql.gz``.
    """
    if not isinstance(key, str):
        raise InvalidKeyError(f"key must be a string, not {type(key).__name__}.")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKeyError(f"key is longer than S3's {MAX_KEY_BYTES} bytes: no such object can exist.")
    visibility, suffix = split_key(tier, key)
    validate_suffix(suffix)
    return visibility
