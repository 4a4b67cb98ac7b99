"""FileManager against a real S3 server: every operation's effect on the buckets and the records."""

from __future__ import annotations

import asyncio
import io
import logging
import pathlib
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from django_s3strata.core import (
    AdoptOrphanOptions,
    ConflictError,
    DeleteOrphanOptions,
    FileManager,
    FileTooLargeError,
    FileVisibility,
    GetUrlOptions,
    InMemoryAdapter,
    InvalidKeyError,
    InvalidOptionError,
    ObjectNotFoundError,
    S3StrataConfig,
    SetHotDurationOptions,
    SetTierOptions,
    SetVisibilityOptions,
    StorageTier,
    UploadOptions,
    VerificationError,
)
from tests.conftest import Env, make_env


class Face:
    """Call an operation through the async API or the sync face, as the test is parametrised."""

    def __init__(self, manager: FileManager, kind: str) -> None:
        self.manager = manager
        self.kind = kind

    def __getattr__(self, name: str) -> Any:
        if self.kind == "sync":
            return getattr(self.manager.sync, name)
        method = getattr(self.manager, name)
        return lambda *a, **kw: asyncio.run(method(*a, **kw))


@pytest.fixture(params=["async", "sync"])
def fm(request: pytest.FixtureRequest, manager: FileManager) -> Face:
    return Face(manager, request.param)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        data: bytes = resp.read()
        return data


# -- upload -------------------------------------------------------------------------


def test_upload_bytes_stores_object_and_record(fm: Face, env: Env) -> None:
    f = fm.upload(b"Hello, World!", UploadOptions(filename="hello.txt"))
    assert f.storage_tier == StorageTier.HOT
    assert f.filename == "hello.txt"
    assert f.path.startswith("private/") and f.path.endswith("-hello.txt")
    assert env.read("HOT", f.path) == b"Hello, World!"
    assert env.keys("COLD") == []
    head = env.hot_client.head_object(Bucket=env.hot_bucket, Key=f.path)
    assert head["ContentType"] == "text/plain; charset=utf-8"
    assert fm.manager.adapter.files[f.id].path == f.path


def test_upload_defaults_filename_to_uuid_and_key_layout(fm: Face, env: Env) -> None:
    f = fm.upload(b"x")
    prefix, suffix = f.path.split("/", 1)
    assert prefix == "private"
    assert suffix == f"{suffix[:36]}-{f.filename}"
    assert len(f.filename) == 36


def test_upload_file_object_and_path(fm: Face, env: Env, tmp_path: pathlib.Path) -> None:
    data = bytes(range(256)) * 40_000  # 10 MiB: multipart from both sources
    src = tmp_path / "blob.bin"
    src.write_bytes(data)
    from_path = fm.upload(src, UploadOptions(filename="blob.bin", tier="COLD", visibility="PUBLIC"))
    with src.open("rb") as fh:
        from_stream = fm.upload(fh, UploadOptions(filename="blob.bin"))
    assert env.read("COLD", from_path.path) == data
    assert from_path.path.startswith("public/")
    assert env.read("HOT", from_stream.path) == data


def test_upload_non_seekable_stream(fm: Face, env: Env) -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, payload: bytes) -> None:
            self._src = io.BytesIO(payload)

        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            chunk = self._src.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    data = b"abc" * 3_000_000
    f = fm.upload(Pipe(data), UploadOptions(filename="pipe.bin"))
    assert env.read("HOT", f.path) == data


def test_upload_with_hot_duration_sets_hot_until_only_for_hot(fm: Face) -> None:
    before = datetime.now(UTC)
    hot = fm.upload(b"x", UploadOptions(hot_duration=3600))
    cold = fm.upload(b"x", UploadOptions(tier=StorageTier.COLD, hot_duration=3600))
    assert hot.hot_until is not None and before + timedelta(seconds=3590) < hot.hot_until < before + timedelta(seconds=3700)
    assert hot.hot_until.tzinfo is not None
    assert cold.hot_until is None


def test_upload_over_max_file_size_stores_nothing(moto_server: Any, tmp_path: pathlib.Path) -> None:
    env = make_env("shared", moto_server, moto_server, max_file_size=10)
    fm = FileManager(env.config, InMemoryAdapter())
    big = tmp_path / "big.bin"
    big.write_bytes(b"y" * 11)
    for data in (b"x" * 11, big, io.BytesIO(b"z" * 11)):
        with pytest.raises(FileTooLargeError, match="limit is 10 bytes"):
            fm.sync.upload(data)
    assert env.keys("HOT") == []
    assert fm.adapter.files == {}


def test_upload_refuses_text_and_unsafe_names(fm: Face, env: Env) -> None:
    with pytest.raises(InvalidOptionError, match=r"pathlib\.Path"):
        fm.upload("hello")
    for suffix in ("../escape", "/abs", "a//b", "a/./b", "nul\x00", ""):
        with pytest.raises(InvalidKeyError):
            fm.upload(b"x", UploadOptions(path_suffix=suffix))
    with pytest.raises(InvalidKeyError, match="1024"):
        fm.upload(b"x", UploadOptions(filename="n" * 1100))
    with pytest.raises(InvalidOptionError):
        fm.upload(b"x", UploadOptions(tier="WARM"))
    with pytest.raises(InvalidOptionError):
        fm.upload(b"x", UploadOptions(hot_duration=-1))
    assert env.keys("HOT") == []


@pytest.mark.parametrize("duration", [10**20, 100 * 365 * 86400 + 1, 2**63])
def test_durations_past_100_years_are_refused_before_any_write(fm: Face, env: Env, duration: int) -> None:
    # Unbounded, 10**20 seconds passed the check, the object was stored, and then now + timedelta
    # raised OverflowError: an orphan, and no InvalidOptionError.
    with pytest.raises(InvalidOptionError, match="100 years"):
        fm.upload(b"x", UploadOptions(hot_duration=duration))
    assert env.keys("HOT") == [] and fm.manager.adapter.files == {}
    cold = fm.upload(b"c", UploadOptions(tier=StorageTier.COLD))
    with pytest.raises(InvalidOptionError, match="100 years"):
        fm.set_tier(cold, SetTierOptions(tier=StorageTier.HOT, hot_duration=duration))
    hot = fm.upload(b"h", UploadOptions(hot_duration=60))
    with pytest.raises(InvalidOptionError, match="100 years"):
        fm.set_hot_duration(hot, SetHotDurationOptions(duration=duration))
    assert env.keys("HOT") == [hot.path] and env.keys("COLD") == [cold.path]
    longest = fm.set_hot_duration(hot, SetHotDurationOptions(duration=100 * 365 * 86400))
    assert longest.hot_until is not None and longest.hot_until.year >= datetime.now(UTC).year + 99


def test_upload_filename_with_slashes_stays_one_segment(fm: Face, env: Env) -> None:
    f = fm.upload(b"x", UploadOptions(filename="../../etc/passwd"))
    assert f.filename == "../../etc/passwd"
    assert f.path.count("/") == 1 and f.path.startswith("private/")


# -- URLs ---------------------------------------------------------------------------


def test_public_url_is_direct_and_downloads(fm: Face, env: Env) -> None:
    f = fm.upload(b"public bytes", UploadOptions(visibility=FileVisibility.PUBLIC, filename="a b+c.txt"))
    url = fm.get_url(f)
    tier = fm.manager.objectstore.tier(StorageTier.HOT)
    assert url.startswith(f"http://127.0.0.1:{tier.port}/{env.hot_bucket}/public/")
    assert "a%20b%2Bc.txt" in url and "X-Amz" not in url
    assert fetch(url) == b"public bytes"


def test_private_url_is_presigned_and_downloads(fm: Face, env: Env) -> None:
    f = fm.upload(b"secret bytes", UploadOptions(filename="s.txt"))
    url = fm.get_url(f, GetUrlOptions(expires_in=60))
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    assert fetch(url) == b"secret bytes"
    assert "X-Amz-Expires=14400" in fm.get_url(f)
    for bad in (0, -5, 604801, 1.5):
        with pytest.raises(InvalidOptionError, match="expires_in"):
            fm.get_url(f, GetUrlOptions(expires_in=bad))


def test_presign_with_content_disposition(moto_server: Any) -> None:
    env = make_env("shared", moto_server, moto_server, presign_content_disposition="attachment")
    fm = FileManager(env.config, InMemoryAdapter())
    f = fm.sync.upload(b"x", UploadOptions(filename="résumé.pdf"))
    url = fm.sync.get_url(f)
    assert "response-content-disposition=attachment" in url
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert "filename*=UTF-8''r%C3%A9sum%C3%A9.pdf" in resp.headers["Content-Disposition"]


# -- visibility and tier moves --------------------------------------------------------


def test_set_visibility_moves_object_both_ways(fm: Face, env: Env) -> None:
    f = fm.upload(b"v", UploadOptions(filename="v.txt"))
    suffix = f.path.split("/", 1)[1]
    pub = fm.set_visibility(f, SetVisibilityOptions(visibility="PUBLIC"))
    assert pub.path == f"public/{suffix}"
    assert env.keys("HOT") == [pub.path]
    assert env.read("HOT", pub.path) == b"v"
    assert fetch(fm.get_url(pub)) == b"v"
    back = fm.set_visibility(pub, SetVisibilityOptions(visibility=FileVisibility.PRIVATE))
    assert back.path == f.path and env.keys("HOT") == [f.path]
    assert fm.set_visibility(back, SetVisibilityOptions(visibility="PRIVATE")) is back


def test_set_visibility_without_move_rewrites_record_only(fm: Face, env: Env) -> None:
    f = fm.upload(b"v")
    pub = fm.set_visibility(f, SetVisibilityOptions(visibility="PUBLIC", move_file=False))
    assert pub.path.startswith("public/")
    assert env.keys("HOT") == [f.path]


def test_set_tier_moves_between_buckets_and_clears_hot_until(fm: Face, env: Env) -> None:
    f = fm.upload(b"tiered", UploadOptions(filename="t.bin", hot_duration=60))
    assert f.hot_until is not None
    cold = fm.set_tier(f, SetTierOptions(tier="COLD"))
    assert cold.storage_tier == StorageTier.COLD and cold.path == f.path
    assert cold.hot_until is None
    assert env.keys("HOT") == [] and env.keys("COLD") == [f.path]
    assert env.read("COLD", f.path) == b"tiered"
    assert env.cold_client.head_object(Bucket=env.cold_bucket, Key=f.path)["ContentType"] == "application/octet-stream"
    hot = fm.set_tier(cold, SetTierOptions(tier=StorageTier.HOT, hot_duration=120))
    assert hot.storage_tier == StorageTier.HOT and hot.hot_until is not None
    assert env.keys("COLD") == [] and env.read("HOT", f.path) == b"tiered"
    assert fetch(fm.get_url(hot)) == b"tiered"


def test_set_tier_large_object_streams_and_verifies(fm: Face, env: Env) -> None:
    data = b"0123456789abcdef" * (1024 * 1024)  # 16 MiB: multipart when streamed across endpoints
    f = fm.upload(data, UploadOptions(filename="big.bin"))
    cold = fm.set_tier(f, SetTierOptions(tier="COLD"))
    assert env.read("COLD", cold.path) == data and env.keys("HOT") == []


def test_custom_prefixes_are_honoured(moto_server: Any) -> None:
    env = make_env("shared", moto_server, moto_server)
    cfg = env.config
    config = S3StrataConfig(
        endpoint=cfg.endpoint,
        port=cfg.port,
        use_ssl=False,
        access_key=cfg.access_key,
        secret_key=cfg.secret_key,
        hot_bucket=env.hot_bucket,
        cold_bucket=env.cold_bucket,
        public_hot_prefix="pub-hot",
        private_hot_prefix="priv-hot",
        public_cold_prefix="pub-cold",
        private_cold_prefix="priv-cold",
    )
    manager = FileManager(config, InMemoryAdapter())
    manager.objectstore.apply_public_read_policy(StorageTier.HOT)
    fm = manager.sync
    f = fm.upload(b"c", UploadOptions(filename="c.txt"))
    assert f.path.startswith("priv-hot/")
    pub = fm.set_visibility(f, SetVisibilityOptions(visibility="PUBLIC"))
    assert pub.path.startswith("pub-hot/")
    assert fetch(fm.get_url(pub)) == b"c"
    cold = fm.set_tier(pub, SetTierOptions(tier="COLD"))
    assert cold.path.startswith("pub-cold/") and env.keys("COLD") == [cold.path]
    assert fm.list_orphan_objects() == []


def test_set_hot_duration(fm: Face) -> None:
    f = fm.upload(b"h", UploadOptions(hot_duration=10))
    now = datetime.now(UTC)
    later = fm.set_hot_duration(f, SetHotDurationOptions(duration=7200))
    assert later.hot_until is not None and later.hot_until > now + timedelta(seconds=7000)
    due = fm.set_hot_duration(later, SetHotDurationOptions(duration=0))
    assert due.hot_until is not None and due.hot_until <= datetime.now(UTC)
    cleared = fm.set_hot_duration(due, SetHotDurationOptions(duration=None))
    assert cleared.hot_until is None
    cold = fm.upload(b"c", UploadOptions(tier="COLD"))
    with pytest.raises(InvalidOptionError, match="HOT files only"):
        fm.set_hot_duration(cold, SetHotDurationOptions(duration=5))


def test_delete_removes_record_then_object(fm: Face, env: Env) -> None:
    f = fm.upload(b"d")
    assert fm.exists(f)
    fm.delete(f)
    assert env.keys("HOT") == []
    assert fm.get_by_id(f.id) is None
    assert not fm.exists(f)


def test_archive_expired_hot_files(fm: Face, env: Env) -> None:
    expired = [fm.upload(f"e{i}".encode(), UploadOptions(hot_duration=0)) for i in range(5)]
    fresh = fm.upload(b"fresh", UploadOptions(hot_duration=3600))
    forever = fm.upload(b"forever")
    assert fm.archive_expired_hot_files() == 5
    assert env.keys("COLD") == sorted(f.path for f in expired)
    assert env.keys("HOT") == sorted([fresh.path, forever.path])
    for f in expired:
        record = fm.get_by_id(f.id)
        assert record.storage_tier == StorageTier.COLD and record.hot_until is None
    assert fm.archive_expired_hot_files() == 0


def test_archive_continues_past_a_failure(fm: Face, env: Env) -> None:
    good = fm.upload(b"g", UploadOptions(hot_duration=0))
    lost = fm.upload(b"l", UploadOptions(hot_duration=0))
    env.hot_client.delete_object(Bucket=env.hot_bucket, Key=lost.path)
    assert fm.archive_expired_hot_files() == 1
    assert fm.get_by_id(good.id).storage_tier == StorageTier.COLD
    assert fm.get_by_id(lost.id).storage_tier == StorageTier.HOT


def test_open_is_seekable_and_ranged(fm: Face, env: Env) -> None:
    data = bytes(range(256)) * 8192  # 2 MiB
    f = fm.upload(data)
    stream = fm.open(f)
    assert stream.read(10) == data[:10]
    stream.seek(1_000_000)
    assert stream.read(5) == data[1_000_000:1_000_005]
    stream.seek(-3, io.SEEK_END)
    assert stream.read() == data[-3:]
    stream.seek(0)
    assert stream.read() == data
    stream.close()
    with pytest.raises(ObjectNotFoundError):
        fm.open(_missing(f))


def _missing(f: Any) -> Any:
    from dataclasses import replace

    return replace(f, path="private/does-not-exist")


def test_download_streams_to_file(fm: Face, tmp_path: pathlib.Path) -> None:
    data = b"q" * (9 * 1024 * 1024)
    f = fm.upload(data)
    out = tmp_path / "out.bin"
    with out.open("wb") as fh:
        fm.download(f, fh)
    assert out.read_bytes() == data


def test_list_files_and_all_objects(fm: Face, env: Env) -> None:
    a = fm.upload(b"a")
    b = fm.upload(b"b", UploadOptions(tier="COLD"))
    assert {f.id for f in fm.list_files()} == {a.id, b.id}
    listing = fm.list_all_objects()
    assert listing.total_count == 2
    assert [o.key for o in listing.hot.objects] == [a.path]
    assert [o.key for o in listing.cold.objects] == [b.path]
    assert listing.hot.bucket == env.hot_bucket and listing.collected_at.tzinfo is not None


# -- orphans --------------------------------------------------------------------------


def test_orphans_are_per_tier_and_path(fm: Face, env: Env) -> None:
    f = fm.upload(b"x")
    env.put("COLD", f.path, b"leftover copy of a HOT file")  # same key, other tier: an orphan
    env.put("HOT", "public/adopt-me.txt", b"a")
    env.put("HOT", "elsewhere/not-ours.txt", b"n")  # outside our prefixes: never touched
    orphans = fm.list_orphan_objects()
    assert sorted((o.tier.value, o.key) for o in orphans) == [("COLD", f.path), ("HOT", "public/adopt-me.txt")]
    assert all(o.bucket == env.bucket(o.tier.value) for o in orphans)
    assert [o.key for o in fm.list_orphan_objects(tier="COLD")] == [f.path]
    assert [o.key for o in fm.list_orphan_objects(prefix="public/")] == ["public/adopt-me.txt"]


def test_delete_orphans_respects_grace_and_dry_run(fm: Face, env: Env) -> None:
    kept = fm.upload(b"k")
    env.put("HOT", "private/orphan.bin", b"o")
    young = fm.delete_orphan_objects()  # default grace period: 24 hours
    assert young.deleted == 0 and "private/orphan.bin" in env.keys("HOT")
    dry = fm.delete_orphan_objects(DeleteOrphanOptions(dry_run=True, grace_period=0))
    assert dry.dry_run and dry.deleted_paths == ["private/orphan.bin"] and "private/orphan.bin" in env.keys("HOT")
    done = fm.delete_orphan_objects(DeleteOrphanOptions(grace_period=0))
    assert done.deleted == 1 and done.failed == 0
    assert env.keys("HOT") == [kept.path]


def test_adopt_orphans(fm: Face, env: Env) -> None:
    env.put("HOT", "public/2026/photo.jpg", b"p")
    env.put("COLD", "private/old.pdf", b"o")
    result = fm.adopt_orphan_objects(AdoptOrphanOptions(grace_period=0, set_hot_until=True, hot_duration=60))
    assert result.adopted == 2 and result.failed == 0
    records = {r.path: r for r in fm.list_files()}
    assert records["public/2026/photo.jpg"].filename == "photo.jpg"
    assert records["public/2026/photo.jpg"].hot_until is not None
    assert records["private/old.pdf"].storage_tier == StorageTier.COLD and records["private/old.pdf"].hot_until is None
    assert fetch(fm.get_url(records["public/2026/photo.jpg"])) == b"p"
    assert fm.list_orphan_objects() == []
    again = fm.adopt_orphan_objects(AdoptOrphanOptions(grace_period=0, extract_filename=lambda k: k.upper()))
    assert again.adopted == 0


def test_orphan_pages_are_checked_in_bulk(moto_server: Any) -> None:
    env = make_env("shared", moto_server, moto_server)
    calls: list[int] = []

    class Counting(InMemoryAdapter):
        async def find_existing_paths(self, storage_tier: StorageTier, paths: list[str]) -> set[str]:
            calls.append(len(paths))
            return await super().find_existing_paths(storage_tier, paths)

    fm = FileManager(env.config, Counting())
    for i in range(5):
        fm.sync.upload(b"x", UploadOptions(path_suffix=f"f{i}"))
    env.put("HOT", "private/orphan", b"o")
    pages = list(fm.objectstore.iter_pages(StorageTier.HOT, "private/", page_size=2))
    assert [len(p) for p in pages] == [2, 2, 2]
    orphans = asyncio.run(fm.list_orphan_objects())
    assert [o.key for o in orphans] == ["private/orphan"]
    assert calls == [6]  # one bulk query for the one page of six keys


# -- the move protocol under failure ------------------------------------------------------


def test_failed_verification_keeps_record_and_source(fm: Face, env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    f = fm.upload(b"precious", UploadOptions(filename="p.bin"))

    def corrupt(*args: Any, **kwargs: Any) -> None:
        raise VerificationError("simulated mismatch", operation="VerifyCopy", tier="COLD", bucket=env.cold_bucket, key=f.path)

    monkeypatch.setattr(fm.manager.objectstore, "_verify", corrupt)
    # A record without an ETag is copied without being read first (nothing to verify against): here
    # the object is read and the copy verified, as for a record that knows its ETag, or one above 5 GiB.
    monkeypatch.setattr(fm.manager.objectstore, "copy_unread", lambda *args: None)
    with pytest.raises(VerificationError):
        fm.set_tier(f, SetTierOptions(tier="COLD"))
    record = fm.get_by_id(f.id)
    assert record.storage_tier == StorageTier.HOT and record.path == f.path
    assert env.read("HOT", f.path) == b"precious"
    assert env.keys("COLD") == []  # the partial copy was removed


def test_failed_record_update_keeps_both_copies_and_sweep_converges(fm: Face, env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    f = fm.upload(b"precious")
    adapter = fm.manager.adapter
    sync_adapter = adapter.as_sync()

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database went away")

    async def aboom(*args: Any, **kwargs: Any) -> Any:
        boom()

    for method in ("update", "update_if"):
        monkeypatch.setattr(adapter, method, aboom)
        monkeypatch.setattr(sync_adapter, method, boom)
    with pytest.raises(RuntimeError):
        fm.set_visibility(f, SetVisibilityOptions(visibility="PUBLIC"))
    monkeypatch.undo()
    assert fm.get_by_id(f.id).path == f.path
    assert env.read("HOT", f.path) == b"precious"
    stale = "public/" + f.path.split("/", 1)[1]
    assert sorted(env.keys("HOT")) == sorted([f.path, stale])
    assert [o.key for o in fm.list_orphan_objects()] == [stale]
    # A re-run converges: the move completes and overwrites the stale copy.
    moved = fm.set_visibility(f, SetVisibilityOptions(visibility="PUBLIC"))
    assert moved.path == stale and env.keys("HOT") == [stale]
    assert fm.list_orphan_objects() == []


def test_failed_source_delete_leaves_only_an_orphan(fm: Face, env: Env, monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    f = fm.upload(b"precious")
    store = fm.manager.objectstore
    real_delete = store.delete

    def flaky_delete(tier: StorageTier, key: str) -> None:
        if tier is StorageTier.HOT:
            from django_s3strata.core import StorageError

            raise StorageError(
                "simulated 503", operation="DeleteObject", tier="HOT", bucket=env.hot_bucket, key=key, transient=True
            )
        real_delete(tier, key)

    monkeypatch.setattr(store, "delete", flaky_delete)
    with caplog.at_level(logging.WARNING, logger="django_s3strata"):
        cold = fm.set_tier(f, SetTierOptions(tier="COLD"))
    monkeypatch.undo()
    assert cold.storage_tier == StorageTier.COLD
    assert env.read("COLD", f.path) == b"precious"
    assert [(o.tier, o.key) for o in fm.list_orphan_objects()] == [(StorageTier.HOT, f.path)]
    assert "orphan sweep" in caplog.text
    assert fm.delete_orphan_objects(DeleteOrphanOptions(grace_period=0)).deleted == 1
    assert env.keys("HOT") == [] and env.read("COLD", f.path) == b"precious"


def test_move_of_missing_source_changes_nothing(fm: Face, env: Env) -> None:
    f = fm.upload(b"x")
    env.hot_client.delete_object(Bucket=env.hot_bucket, Key=f.path)
    with pytest.raises(ObjectNotFoundError) as info:
        fm.set_tier(f, SetTierOptions(tier="COLD"))
    assert info.value.key == f.path and info.value.bucket == env.hot_bucket and info.value.tier == "HOT"
    assert fm.get_by_id(f.id).storage_tier == StorageTier.HOT


def test_a_move_that_loses_a_race_changes_nothing(fm: Face, env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    f = fm.upload(b"raced", UploadOptions(filename="r.bin"))
    store = fm.manager.objectstore
    racing: list[Any] = []

    def then_lose_the_race(copy: Any) -> Any:
        def copy_then_lose_the_race(*args: Any, **kwargs: Any) -> Any:
            result = copy(*args, **kwargs)
            if not racing:
                # A writer that knows no claims (an s3strata-ts app on the same table) makes the file public
                # while this move is between copy and commit: only the compare-and-set commit stops the move.
                public = f.path.replace("private/", "public/", 1)
                env.hot_client.copy_object(
                    Bucket=env.hot_bucket, Key=public, CopySource={"Bucket": env.hot_bucket, "Key": f.path}
                )
                racing.append(fm.manager.sync.adapter.update(f.id, path=public))
                env.hot_client.delete_object(Bucket=env.hot_bucket, Key=f.path)
            return result

        return copy_then_lose_the_race

    # Either way of copying: read first (a record with an ETag), or not (one without).
    monkeypatch.setattr(store, "copy", then_lose_the_race(store.copy))
    monkeypatch.setattr(store, "copy_unread", then_lose_the_race(store.copy_unread))
    with pytest.raises(ConflictError) as info:
        fm.set_tier(f, SetTierOptions(tier="COLD"))
    assert info.value.file_id == f.id and "another move" in str(info.value)
    winner = fm.get_by_id(f.id)
    assert (winner.storage_tier, winner.path) == (StorageTier.HOT, racing[0].path)
    # The loser's copy is gone and the winner's object holds the bytes: nothing dangles, nothing is orphaned.
    assert env.keys("HOT") == [winner.path] and env.keys("COLD") == []
    assert env.read("HOT", winner.path) == b"raced"


def test_failed_create_removes_the_uploaded_object(fm: Face, env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = fm.manager.adapter

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("insert failed")

    async def aboom(*args: Any, **kwargs: Any) -> Any:
        boom()

    monkeypatch.setattr(adapter, "create", aboom)
    monkeypatch.setattr(adapter.as_sync(), "create", boom)
    with pytest.raises(RuntimeError):
        fm.upload(b"x")
    assert env.keys("HOT") == []
