"""Celery tasks on real workers: separate processes, a Redis broker, the test database, a live S3 server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import Retry
from django.db import connection

from django_s3strata import get_file_manager
from django_s3strata.beat import beat_schedule
from django_s3strata.core import ConfigurationError, StorageError, UploadOptions
from django_s3strata.models import PhysicalFile
from tests.conftest import Env, seed_expired


def _redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), 1).close()
        return True
    except OSError:
        return False


pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not _redis_up(), reason="needs Redis on 127.0.0.1:6379"),
]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def queue() -> str:
    from tests.celery_app import app

    name = f"s3strata-test-{uuid.uuid4().hex[:8]}"
    app.conf.task_default_queue = name
    return name


@pytest.fixture
def start_workers(s3strata_settings: Env, settings: Any, queue: str, tmp_path: Path) -> Iterator[Callable[..., list[Any]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(count: int, beat: dict[str, Any] | None = None) -> list[Any]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "PYTHONPATH": str(ROOT),
            "S3STRATA_TEST_DB_NAME": connection.settings_dict["NAME"],
            "S3STRATA_TEST_SETTINGS": json.dumps(settings.S3STRATA),
            "S3STRATA_TEST_QUEUE": queue,
        }
        if beat is not None:
            env["S3STRATA_TEST_BEAT"] = json.dumps(beat)
        for i in range(count):
            cmd = [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker", "--pool=solo", "-Q", queue]
            cmd += ["-n", f"w{i}-{queue}@%h", "--loglevel=WARNING", "--without-gossip", "--without-mingle"]
            if beat is not None and i == 0:
                cmd += ["--beat", "--schedule", str(tmp_path / "beat-schedule")]
            with (tmp_path / f"worker{i}.log").open("wb") as log:
                procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
        return procs

    yield start
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    for log in tmp_path.glob("worker*.log"):
        text = log.read_text(errors="replace")
        if "Traceback" in text:
            print(f"--- {log.name} ---\n{text[-3000:]}")


def upload_expired(n: int) -> list[PhysicalFile]:
    sync = get_file_manager().sync
    from django.db import connections

    def one(i: int) -> PhysicalFile:
        try:
            return sync.upload(f"payload {i}".encode(), UploadOptions(filename=f"{i}.txt", hot_duration=0))
        finally:
            connections.close_all()

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


@pytest.mark.parametrize("env", ["shared"], indirect=True)
def test_beat_scheduled_archival_moves_the_objects(start_workers: Callable[..., Any], s3strata_settings: Env) -> None:
    env = s3strata_settings
    files = upload_expired(10)
    schedule = beat_schedule({"ARCHIVE_INTERVAL": 1, "ORPHAN_SWEEP_INTERVAL": None, "RESTORE_POLL_INTERVAL": None})
    assert list(schedule) == ["s3strata-archive"] and schedule["s3strata-archive"]["options"] == {"expires": 1.0}
    start_workers(1, beat=schedule)
    assert wait_for(lambda: not PhysicalFile.objects.hot().exists(), 90), "beat never archived the files"
    # A batch commits its rows, then deletes its sources in one request: wait for that step too.
    assert wait_for(lambda: env.keys("HOT") == [], 30), f"sources left in HOT: {env.keys('HOT')}"
    assert env.keys("COLD") == sorted(f.path for f in files)
    assert env.read("COLD", files[3].path) == b"payload 3"


@pytest.mark.parametrize("env", ["shared"], indirect=True)  # one endpoint is enough: this is about claims
def test_four_workers_move_each_file_exactly_once(start_workers: Callable[..., Any], s3strata_settings: Env) -> None:
    from django_s3strata.tasks import archive_expired_hot_files

    env = s3strata_settings
    objects = seed_expired(env, 2000, "workers")
    start_workers(4)
    results = [archive_expired_hot_files.apply_async(kwargs={"batch_size": 50, "concurrency": 4}) for _ in range(8)]
    summaries = [r.get(timeout=600) for r in results]
    assert sum(s["moved"] for s in summaries) == 2000
    assert sum(s["failed"] for s in summaries) == 0
    assert sum(s["skipped"] for s in summaries) == 0
    json.dumps(summaries)  # results are plain JSON
    rows = dict(PhysicalFile.objects.values_list("path", "storage_tier"))
    assert len(rows) == 2000 and set(rows.values()) == {"COLD"}  # no lost or duplicated row
    cold = set()
    paginator = env.cold_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=env.cold_bucket):
        cold.update(o["Key"] for o in page.get("Contents", []))
    assert cold == set(rows)  # every row points at an object, and no stray copy
    assert env.keys("HOT") == []
    key = sorted(objects)[1234]
    assert env.read("COLD", key) == objects[key]


@pytest.mark.django_db
def test_transient_errors_retry_and_configuration_errors_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    from django_s3strata import operations
    from django_s3strata.tasks import archive_expired_hot_files

    def transient(**kwargs: Any) -> Any:
        raise StorageError("slow down", operation="CopyObject", code="SlowDown", transient=True)

    monkeypatch.setattr(operations, "archive_expired", transient)
    with pytest.raises(Retry):
        archive_expired_hot_files.apply(throw=True)

    def permanent(**kwargs: Any) -> Any:
        raise StorageError("denied", operation="CopyObject", code="AccessDenied")

    monkeypatch.setattr(operations, "archive_expired", permanent)
    with pytest.raises(StorageError, match="denied"):
        archive_expired_hot_files.apply(throw=True)

    def misconfigured(**kwargs: Any) -> Any:
        raise ConfigurationError("no bucket")

    monkeypatch.setattr(operations, "archive_expired", misconfigured)
    with pytest.raises(ConfigurationError):
        archive_expired_hot_files.apply(throw=True)
