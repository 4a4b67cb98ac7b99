"""Content types from hostile input: strict parsing, patterns, types from names, and active content kept off inline.

A browser renders some types as documents that run script with the bucket's origin: HTML,
XHTML, SVG, any XML (XSLT and XHTML namespaces), JavaScript. Served inline from a public key
they are stored XSS. The rules here are the one place that decides, for direct uploads and for
uploads through the server alike:

- a type is one ``type/subtype`` token pair (RFC 6838 names), lower-cased; parameters, commas,
  spaces and wildcards are refused (``parse_content_type``);
- a pattern is ``type/subtype``, ``type/*`` or ``*/*``; a wildcard never admits an active type,
  which must be listed by its exact name (``allowed``);
- a browser's claim that disagrees with the file name's type gives way to the name's
  (``stored_type``): ``report.pdf`` sent as ``text/html`` is stored as ``application/pdf``;
- an active type is stored with ``Content-Disposition: attachment`` (``"attachment"``, the
  default), refused (``"refuse"``), or served as sent (``"inline"``, an explicit opt-out)
  (``write_disposition``).
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterable
from typing import Literal
from urllib.parse import quote

from .exceptions import InvalidOptionError

__all__ = [
    "ACTIVE_CONTENT_POLICIES",
    "ActiveContent",
    "allowed",
    "content_disposition",
    "guess_content_type",
    "header_type",
    "is_active",
    "parse_content_type",
    "parse_pattern",
    "stored_type",
    "type_from_name",
    "write_disposition",
]

ActiveContent = Literal["attachment", "refuse", "inline"]
ACTIVE_CONTENT_POLICIES: tuple[ActiveContent, ...] = ("attachment", "refuse", "inline")

# RFC 6838 4.2 restricted-name: at most 127 characters, a letter or digit first. No "*", "%",
# quotes, spaces, "," or ";": nothing that a condition, a header or fnmatch reads as syntax.
_NAME = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
_TYPE = re.compile(rf"({_NAME})/({_NAME})")
_PATTERN = re.compile(rf"(?:\*/\*|{_NAME}/\*|{_NAME}/{_NAME})")

# What browsers execute: the HTML and XML document types, and every JavaScript type of the
# WHATWG MIME Sniffing standard (a script type loaded as a document is not run, but a service
# worker or <script> from the bucket's origin is).
_ACTIVE = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/xsl",
        "application/xslt+xml",
        "application/ecmascript",
        "application/javascript",
        "application/x-ecmascript",
        "application/x-javascript",
        "text/ecmascript",
        "text/javascript",
        "text/javascript1.0",
        "text/javascript1.1",
        "text/javascript1.2",
        "text/javascript1.3",
        "text/javascript1.4",
        "text/javascript1.5",
        "text/jscript",
        "text/livescript",
        "text/x-ecmascript",
        "text/x-javascript",
        "multipart/x-mixed-replace",
    }
)
# A compressed file is its compression's type, not the type of what it holds (``a.tar.gz``).
_ENCODINGS = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
    "br": "application/x-brotli",
}
OCTET_STREAM = "application/octet-stream"


def parse_content_type(value: object) -> str:
    """Return ``value`` as one lower-cased ``type/subtype``, or raise InvalidOptionError."""
    text = value.strip().lower() if isinstance(value, str) else None
    if text is None or not _TYPE.fullmatch(text):
        raise InvalidOptionError(
            f"content type {value!r} is invalid: give one type such as 'image/png', without parameters, commas or wildcards."
        )
    return text


def parse_pattern(value: object) -> str:
    """Return ``value`` as a lower-cased pattern (``type/subtype``, ``type/*`` or ``*/*``), or raise InvalidOptionError."""
    text = value.strip().lower() if isinstance(value, str) else None
    if text is None or not _PATTERN.fullmatch(text):
        raise InvalidOptionError(
            f"content type pattern {value!r} is invalid: give 'type/subtype', 'type/*' or '*/*' (one per entry)."
        )
    return text


def is_active(content_type: str) -> bool:
    """Return True when a browser may run script from ``content_type`` shown inline (HTML, SVG, XML, JavaScript)."""
    lowered = content_type.strip().lower()
    media = lowered.split(";", 1)[0].strip()
    subtype = media.partition("/")[2]
    # Unparseable types are active too: browsers sniff what they cannot read.
    return media in _ACTIVE or subtype == "xml" or subtype.endswith("+xml") or not _TYPE.fullmatch(media)


def _matches(content_type: str, pattern: str) -> bool:
    if pattern == content_type:
        return True
    if is_active(content_type):
        return False
    return pattern == "*/*" or (pattern.endswith("/*") and content_type.split("/", 1)[0] == pattern[:-2])


def allowed(content_type: str, patterns: Iterable[str] | None) -> bool:
    """Return True when the (parsed) ``content_type`` matches a pattern; None means ``*/*``.

    Wildcards admit no active type: ``image/*`` does not admit ``image/svg+xml``, nor ``*/*``
    ``text/html``. Malformed patterns match nothing.
    """
    if not _TYPE.fullmatch(content_type):
        return False
    for pattern in ("*/*",) if patterns is None else patterns:
        try:
            if _matches(content_type, parse_pattern(pattern)):
                return True
        except InvalidOptionError:
            continue
    return False


def type_from_name(filename: str) -> str | None:
    """Return the type of ``filename``'s extension, or None when the name says nothing."""
    guessed, encoding = mimetypes.guess_type(filename, strict=False)
    if encoding is not None:
        return _ENCODINGS.get(encoding, OCTET_STREAM)
    if guessed is None:
        return None
    try:
        return parse_content_type(guessed)
    except InvalidOptionError:  # a local mime.types entry we would not accept from a client either
        return None


def guess_content_type(filename: str) -> str:
    """Return the MIME type for ``filename``'s extension, as s3strata-ts does, else application/octet-stream."""
    return type_from_name(filename) or OCTET_STREAM


def stored_type(claimed: object, filename: str) -> str:
    """Return the type to store for a file a client named ``filename`` and said is ``claimed``.

    The name decides when it has a known extension and the claim disagrees (or is malformed);
    without one, a well-formed claim is kept unless it is active (the name cannot back it).
    """
    try:
        claim: str | None = parse_content_type(claimed) if claimed else None
    except InvalidOptionError:
        claim = None
    named = type_from_name(filename)
    if named is not None:
        return named
    if claim is None or is_active(claim):
        return OCTET_STREAM
    return claim


def header_type(content_type: str) -> str:
    """Return the ``Content-Type`` header to store ``content_type`` with: text gets ``; charset=utf-8``.

    Text is every ``text/*`` type and JSON (``application/json``, ``*/*+json``), so that a browser
    opening the file shows UTF-8 as UTF-8. A type that already carries parameters is kept as it is.
    """
    if ";" in content_type:
        return content_type
    media = content_type.strip().lower()
    kind, _, subtype = media.partition("/")
    if kind == "text" or media == "application/json" or subtype.endswith("+json"):
        return f"{media}; charset=utf-8"
    return content_type


def content_disposition(disposition: str, filename: str) -> str:
    """Return a ``Content-Disposition`` value carrying ``filename`` safely (RFC 6266 / 5987)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def write_disposition(content_type: str, filename: str | None, policy: ActiveContent) -> str | None:
    """Return the ``Content-Disposition`` to store ``content_type`` with (None: none), or raise for a refused type.

    Under ``"attachment"`` an active type is stored as an attachment, so that browsers download
    it instead of running it; under ``"refuse"`` it raises InvalidOptionError before any write;
    under ``"inline"`` nothing is added.
    """
    if policy not in ACTIVE_CONTENT_POLICIES:
        raise InvalidOptionError(f"active_content={policy!r} is invalid: use one of {', '.join(ACTIVE_CONTENT_POLICIES)}.")
    if policy == "inline" or not is_active(content_type):
        return None
    if policy == "refuse":
        raise InvalidOptionError(
            f"Files of type {content_type!r} are refused: a browser would run them as a page of this storage's site."
        )
    return content_disposition("attachment", filename) if filename else "attachment"
