"""core.contenttypes: strict types and patterns, types from names, and active content kept off inline."""

from __future__ import annotations

import pytest

from django_s3strata.core import (
    FileManager,
    InvalidOptionError,
    S3StrataAdvancedOptions,
    SetTierOptions,
    StorageTier,
    UploadOptions,
)
from django_s3strata.core.contenttypes import (
    allowed,
    is_active,
    parse_content_type,
    parse_pattern,
    stored_type,
    type_from_name,
    write_disposition,
)
from tests.conftest import Env

one_endpoint = pytest.mark.parametrize("env", ["shared"], indirect=True)


@pytest.mark.parametrize(
    "value",
    ["", "image/", "/png", "image", "image/png; charset=utf-8", "image/x,text/html", "image/*", "*/*", "a b/c", "a/b c", None, 3],
)
def test_types_are_parsed_strictly(value: object) -> None:
    with pytest.raises(InvalidOptionError, match="is invalid"):
        parse_content_type(value)


def test_a_type_is_lower_cased() -> None:
    assert parse_content_type(" IMAGE/PNG ") == "image/png"
    assert parse_content_type("application/vnd.ms-excel") == "application/vnd.ms-excel"


@pytest.mark.parametrize("value", ["image/", "image/x,text/html", "*/png", "image/*;q=1", "image/[a-z]*", "**", ""])
def test_patterns_are_parsed_strictly(value: str) -> None:
    with pytest.raises(InvalidOptionError, match="pattern"):
        parse_pattern(value)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "application/rss+xml",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "text/html; charset=utf-8",
        "not a type",
    ],
)
def test_active_types(content_type: str) -> None:
    assert is_active(content_type)


@pytest.mark.parametrize("content_type", ["image/png", "application/pdf", "text/plain", "video/mp4", "application/json"])
def test_passive_types(content_type: str) -> None:
    assert not is_active(content_type)


@pytest.mark.parametrize(
    ("content_type", "patterns", "expected"),
    [
        ("image/png", ["image/*"], True),
        ("image/svg+xml", ["image/*"], False),  # a wildcard never admits active content
        ("text/html", None, False),
        ("text/html", ["*/*"], False),
        ("text/html", ["text/*"], False),
        ("text/html", ["text/html"], True),  # named exactly: admitted (and stored as an attachment)
        ("image/png", ["image/"], False),  # a malformed pattern matches nothing
        ("image/x,text/html", ["image/*"], False),  # a malformed type matches nothing
        ("image/png", ["application/pdf"], False),
        ("application/pdf", None, True),
    ],
)
def test_allowed(content_type: str, patterns: list[str] | None, expected: bool) -> None:
    assert allowed(content_type, patterns) is expected


@pytest.mark.parametrize(
    ("claimed", "filename", "expected"),
    [
        ("text/html", "report.pdf", "application/pdf"),
        ("application/pdf", "page.html", "text/html"),
        ("image/x,text/html", "photo.jpg", "image/jpeg"),
        (None, "photo.jpg", "image/jpeg"),
        ("text/plain", "README", "text/plain"),
        ("text/html", "README", "application/octet-stream"),
        ("image/svg+xml", "README", "application/octet-stream"),
        ("text/plain; charset=utf-8", "README", "application/octet-stream"),
        (None, "README", "application/octet-stream"),
        ("application/x-tar", "backup.tar.gz", "application/gzip"),
    ],
)
def test_the_name_decides_the_stored_type(claimed: str | None, filename: str, expected: str) -> None:
    assert stored_type(claimed, filename) == expected


def test_type_from_name() -> None:
    assert type_from_name("a.SVG") == "image/svg+xml" and type_from_name("a") is None


def test_write_disposition() -> None:
    assert write_disposition("image/png", "a.png", "attachment") is None
    assert (
        write_disposition("text/html", 'a"b.html', "attachment")
        == "attachment; filename=\"a_b.html\"; filename*=UTF-8''a%22b.html"
    )
    assert write_disposition("text/html", "a.html", "inline") is None
    assert write_disposition("text/html", None, "attachment") == "attachment"
    with pytest.raises(InvalidOptionError, match="refused"):
        write_disposition("image/svg+xml", "a.svg", "refuse")
    with pytest.raises(InvalidOptionError, match="active_content"):
        write_disposition("text/html", "a.html", "maybe")  # type: ignore[arg-type]


def test_the_setting_is_checked() -> None:
    from django_s3strata.core import ConfigurationError

    with pytest.raises(ConfigurationError, match="active_content"):
        S3StrataAdvancedOptions(active_content="sometimes")  # type: ignore[arg-type]


# -- uploads through the manager (server side) --------------------------------------------------------


@one_endpoint
@pytest.mark.parametrize("size", [10, 9 * 1024 * 1024], ids=["put", "multipart"])
def test_server_side_uploads_store_active_content_as_attachments(manager: FileManager, env: Env, size: int) -> None:
    body = b"<script>alert(1)</script>".ljust(size, b" ")
    record = manager.sync.upload(body, UploadOptions(filename="page.html", visibility="PUBLIC"))
    head = env.client("HOT").head_object(Bucket=env.hot_bucket, Key=record.path)
    assert head["ContentType"] == "text/html; charset=utf-8"
    assert head["ContentDisposition"] == "attachment; filename=\"page.html\"; filename*=UTF-8''page.html"
    plain = manager.sync.upload(b"hello", UploadOptions(filename="a.txt"))
    assert "ContentDisposition" not in env.client("HOT").head_object(Bucket=env.hot_bucket, Key=plain.path)


@one_endpoint
def test_server_side_uploads_refuse_bad_types_and_refused_content_before_writing(env: Env) -> None:
    from django_s3strata.core import InMemoryAdapter

    manager = FileManager(env.config, InMemoryAdapter())
    with pytest.raises(InvalidOptionError, match="is invalid"):
        manager.sync.upload(b"x", UploadOptions(filename="a.png", content_type="image/png,text/html"))
    env.config.advanced.active_content = "refuse"
    strict = FileManager(env.config, InMemoryAdapter())
    with pytest.raises(InvalidOptionError, match="refused"):
        strict.sync.upload(b"<svg/>", UploadOptions(filename="a.svg"))
    assert env.keys("HOT") == []


def test_a_copy_between_tiers_keeps_active_content_an_attachment(manager: FileManager, env: Env) -> None:
    """On one endpoint the server copies the metadata; across two the streamed copy writes it again."""
    record = manager.sync.upload(b"<p>hi</p>", UploadOptions(filename="page.html"))
    moved = manager.sync.set_tier(record, SetTierOptions(StorageTier.COLD))
    head = env.client("COLD").head_object(Bucket=env.cold_bucket, Key=moved.path)
    assert head["ContentType"] == "text/html; charset=utf-8" and head["ContentDisposition"].startswith("attachment")
