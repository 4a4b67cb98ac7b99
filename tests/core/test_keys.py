"""Keys: upstream's layout, safe suffixes, the 1,024-byte limit, visibility from configured prefixes."""

from __future__ import annotations

import pytest

from django_s3strata.core import FileVisibility, InvalidKeyError, S3StrataConfig
from django_s3strata.core.config import resolve_tier
from django_s3strata.core.keys import (
    build_key,
    check_key,
    clean_filename,
    default_suffix,
    normalize_name,
    split_key,
    unique_suffix,
    validate_suffix,
)

CFG = S3StrataConfig(endpoint="e", access_key="a", secret_key="s", hot_bucket="h", cold_bucket="c", public_hot_prefix="www")
HOT = resolve_tier(CFG, "HOT")


def test_default_suffix_is_uuid_dash_filename() -> None:
    suffix = default_suffix("report.pdf")
    assert suffix[36:] == "-report.pdf" and suffix[8] == suffix[13] == "-"
    assert "/" not in default_suffix("a/b\\c")


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a\\b", "a\x00b", "a\nb", "a/"])
def test_unsafe_suffixes_are_refused(bad: str) -> None:
    with pytest.raises(InvalidKeyError):
        validate_suffix(bad)


def test_suffix_is_nfc_normalised() -> None:
    assert validate_suffix("cafe\u0301.txt") == "caf\u00e9.txt"
    assert clean_filename("cafe\u0301.txt") == "caf\u00e9.txt"


def test_unique_suffix_is_nfc_normalised() -> None:
    # macOS sends names decomposed; the stored name and the key are the composed form.
    basename, suffix = unique_suffix("d\u00e9cembre/cafe\u0301.txt")
    assert basename == "caf\u00e9.txt" and suffix.startswith("d\u00e9cembre/") and suffix.endswith("-caf\u00e9.txt")
    assert normalize_name("cafe\u0301") == normalize_name("caf\u00e9") == "caf\u00e9"


def test_check_key_accepts_only_keys_inside_a_prefix() -> None:
    assert check_key(HOT, "www/a.png") is FileVisibility.PUBLIC
    assert check_key(HOT, "private/2026/b.pdf") is FileVisibility.PRIVATE
    for bad in (
        "backups/db.sql.gz",
        "www",
        "www/",
        "wwwx/a",
        "www/../backups/db.sql.gz",
        "private//a",
        "private/a\x00",
        "x" * 2000,
    ):
        with pytest.raises(InvalidKeyError):
            check_key(HOT, bad)


@pytest.mark.parametrize("bad", ["", "   ", "a\x00", "tab\there"])
def test_bad_filenames_are_refused(bad: str) -> None:
    with pytest.raises(InvalidKeyError):
        clean_filename(bad)


def test_build_key_respects_s3_limit_in_bytes() -> None:
    assert build_key(HOT, FileVisibility.PUBLIC, "x") == "www/x"
    ok = "é" * ((1024 - len("private/")) // 2)
    assert len(build_key(HOT, FileVisibility.PRIVATE, ok).encode()) <= 1024
    with pytest.raises(InvalidKeyError, match="1024"):
        build_key(HOT, FileVisibility.PRIVATE, ok + "éé")


def test_split_key_uses_configured_prefixes() -> None:
    assert split_key(HOT, "www/a/b.txt") == (FileVisibility.PUBLIC, "a/b.txt")
    assert split_key(HOT, "private/z") == (FileVisibility.PRIVATE, "z")
    with pytest.raises(InvalidKeyError, match="public/z"):
        split_key(HOT, "public/z")  # "public" is not this tier's public prefix
    with pytest.raises(InvalidKeyError):
        split_key(HOT, "wwwx/z")
