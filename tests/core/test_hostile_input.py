"""Hostile filenames and path suffixes: each is made safe or refused; no key ever leaves its prefix."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from django_s3strata.core import FileManager, InMemoryAdapter, InvalidKeyError, S3StrataConfig, UploadOptions
from django_s3strata.core.keys import MAX_KEY_BYTES

CONFIG = S3StrataConfig(
    endpoint="s3.example.com", access_key="a", secret_key="s", hot_bucket="h", cold_bucket="c", public_hot_prefix="pub"
)
MANAGER = FileManager(CONFIG, InMemoryAdapter())
PREFIXES = ("pub/", "private/")

nasty = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(["..", ".", "", "/", "\\", "\x00", "\n", "a", "é", "e\u0301", "~", " ", "%2e%2e"]), max_size=40).map(
        "".join
    ),
    st.text(alphabet=st.characters(categories=["Lu", "Ll", "Nd", "Cc", "Zs", "Mn"]), min_size=1000, max_size=1100),
)


def planned_key(options: UploadOptions) -> str:
    """Return the key an upload would write, without sending anything."""
    op = MANAGER._ops.upload(b"x", options)
    step = next(op)
    op.close()
    key: str = step.args[1]
    return key


def assert_safe(key: str) -> None:
    assert key.startswith(PREFIXES)
    assert len(key.encode("utf-8")) <= MAX_KEY_BYTES
    assert all(part not in ("", ".", "..") for part in key.split("/"))
    assert not any(unicodedata.category(c) == "Cc" for c in key) and "\\" not in key
    assert key == unicodedata.normalize("NFC", key)


@settings(max_examples=300, deadline=None)
@given(filename=nasty)
def test_any_filename_is_made_safe_or_refused(filename: str) -> None:
    try:
        key = planned_key(UploadOptions(filename=filename))
    except InvalidKeyError:
        return
    assert_safe(key)
    assert key.count("/") == 1  # a filename never adds a directory


@settings(max_examples=300, deadline=None)
@given(suffix=nasty, visibility=st.sampled_from(["PUBLIC", "PRIVATE"]))
def test_any_path_suffix_stays_inside_its_prefix_or_is_refused(suffix: str, visibility: str) -> None:
    try:
        key = planned_key(UploadOptions(path_suffix=suffix, visibility=visibility))
    except InvalidKeyError:
        return
    assert_safe(key)
    assert key.startswith("pub/" if visibility == "PUBLIC" else "private/")


@pytest.mark.parametrize("suffix", ["../x", "/etc/passwd", "a/../../b", "a\\..\\b", "a\x00b", "", "é" * 600])
def test_known_attacks_are_refused(suffix: str) -> None:
    with pytest.raises(InvalidKeyError):
        planned_key(UploadOptions(path_suffix=suffix))
