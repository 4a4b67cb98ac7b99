"""Code written for upstream s3strata runs unchanged but for its import line."""

from __future__ import annotations

import asyncio
import logging
import textwrap
from typing import Any

import pytest

from django_s3strata.core import FileManager, SetHotDurationOptions, SetTierOptions, StorageTier, UploadOptions
from tests.conftest import Env, make_env

# Upstream's README quick start, with its import line changed (upstream forgot UploadOptions there).
QUICK_START = """
import asyncio
from django_s3strata.core import FileManager, S3StrataConfig, StorageAdapter, PhysicalFile, UploadOptions
from datetime import datetime
from typing import List, Optional

# Implement your storage adapter (example with in-memory storage)
class InMemoryAdapter(StorageAdapter):
    def __init__(self):
        self.files = {}
        self.next_id = 1

    async def create(self, storage_tier, filename, path, hot_until):
        file_id = self.next_id
        self.next_id += 1
        file = PhysicalFile(
            id=file_id,
            storage_tier=storage_tier,
            filename=filename,
            path=path,
            hot_until=hot_until,
            created_at=datetime.now(),
        )
        self.files[file_id] = file
        return file

    async def find_by_id(self, id):
        return self.files.get(id)

    async def update(self, id, storage_tier=None, path=None, hot_until=None):
        file = self.files[id]
        if storage_tier is not None:
            file.storage_tier = storage_tier
        if path is not None:
            file.path = path
        if hot_until is not None:
            file.hot_until = hot_until
        return file

    async def delete(self, id):
        del self.files[id]

    async def find_expired_hot_files(self):
        now = datetime.now()
        return [f for f in self.files.values()
                if f.storage_tier == "HOT" and f.hot_until and f.hot_until <= now]

    async def find_all(self):
        return list(self.files.values())


async def main():
    # Configure S3Strata
    config = S3StrataConfig(
        endpoint=ENDPOINT,
        access_key="strata-test",
        secret_key="strata-test-secret",
        hot_bucket=HOT_BUCKET,
        cold_bucket=COLD_BUCKET,
    )

    # Create file manager with your adapter
    adapter = InMemoryAdapter()
    file_manager = FileManager(config, adapter)

    # Upload a file
    file = await file_manager.upload(
        b"Hello, World!",
        UploadOptions(filename="hello.txt")
    )

    # Get URL for the file
    url = await file_manager.get_url(file)
    print(f"File URL: {url}")

    # Archive expired hot files (housekeeping)
    archived_count = await file_manager.archive_expired_hot_files()
    print(f"Archived {archived_count} files")
"""


@pytest.fixture
def shared_env(moto_server: Any) -> Env:
    return make_env("shared", moto_server, moto_server)


def test_upstream_quick_start_runs(shared_env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = shared_env.config
    # The seed config names a host only; the local server's port and scheme come in the same fields.
    source = (
        QUICK_START.replace("endpoint=ENDPOINT,", f"endpoint={cfg.endpoint!r}, port={cfg.port}, use_ssl=False,")
        .replace("HOT_BUCKET", repr(shared_env.hot_bucket))
        .replace("COLD_BUCKET", repr(shared_env.cold_bucket))
    )
    namespace: dict[str, Any] = {}
    exec(compile(textwrap.dedent(source), "quickstart", "exec"), namespace)
    asyncio.run(namespace["main"]())
    out = capsys.readouterr().out
    assert f"File URL: http://{cfg.endpoint}:{cfg.port}/{shared_env.hot_bucket}/private/" in out
    assert "Archived 0 files" in out
    [key] = shared_env.keys("HOT")
    assert key.endswith("-hello.txt") and shared_env.read("HOT", key) == b"Hello, World!"


def seed_adapter(shared_env: Env) -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(QUICK_START, "quickstart", "exec"), namespace)
    return namespace["InMemoryAdapter"]()


def test_seed_adapter_through_the_sync_face_and_orphan_fallback(shared_env: Env, caplog: pytest.LogCaptureFixture) -> None:
    adapter = seed_adapter(shared_env)
    fm = FileManager(shared_env.config, adapter).sync  # an async-only adapter, bridged
    f = fm.upload(b"seed", UploadOptions(hot_duration=60))
    shared_env.put("HOT", "private/orphan", b"o")
    # No find_existing_paths: orphans are found with one find_all.
    assert [o.key for o in fm.list_orphan_objects()] == ["private/orphan"]
    with caplog.at_level(logging.WARNING, logger="django_s3strata"):
        cold = fm.set_tier(f, SetTierOptions(tier="COLD"))
    assert cold.storage_tier == StorageTier.COLD and shared_env.keys("COLD") == [f.path]
    # The seed's update() reads None as "not given", so it cannot clear hot_until: we say so.
    assert cold.hot_until is not None and "treat hot_until=None as 'clear'" in caplog.text


def test_seed_adapter_cannot_clear_hot_duration_and_we_warn(shared_env: Env, caplog: pytest.LogCaptureFixture) -> None:
    fm = FileManager(shared_env.config, seed_adapter(shared_env))
    f = asyncio.run(fm.upload(b"x", UploadOptions(hot_duration=60)))
    with caplog.at_level(logging.WARNING, logger="django_s3strata"):
        asyncio.run(fm.set_hot_duration(f, SetHotDurationOptions(duration=None)))
    assert "could not" not in caplog.text and "clear" in caplog.text
