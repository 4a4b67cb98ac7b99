"""Run with a fresh PostgreSQL database in S3STRATA_TEST_DB_NAME and SHARED_TABLE on (see test_interop.py).

Creates the table as Prisma's migration does, writes rows the way s3strata-ts does, then drives
Django over them, and reads Django's rows back through plain SQL as Prisma would.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import django
import psycopg

PRISMA_SQL = """
CREATE TYPE "StorageTier" AS ENUM ('HOT', 'COLD');
CREATE TABLE "PhysicalFile" (
    "id" SERIAL NOT NULL,
    "storage_tier" "StorageTier" NOT NULL,
    "filename" TEXT NOT NULL,
    "path" TEXT NOT NULL,
    "hot_until" TIMESTAMP(3),
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "PhysicalFile_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "PhysicalFile_storage_tier_hot_until_idx" ON "PhysicalFile"("storage_tier", "hot_until");
"""


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        data: bytes = resp.read()
        return data


def check_schema(conn: psycopg.Connection) -> None:
    """Assert that the table Django made is the one Prisma's migration makes."""
    columns = dict(
        conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = '\"PhysicalFile\"'::regclass AND attnum > 0 AND NOT attisdropped"
        ).fetchall()
    )
    assert columns["storage_tier"] == '"StorageTier"', columns
    for name in ("hot_until", "created_at", "updated_at"):
        assert columns[name] == "timestamp(3) without time zone", columns
    assert columns["filename"] == columns["path"] == "text" and columns["id"] == "integer", columns
    indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'PhysicalFile'")}
    assert "PhysicalFile_storage_tier_hot_until_idx" in indexes, indexes


def main(mode: str) -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3 = boto3.client(
        "s3", endpoint_url=f"http://{host}:{port}", aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    )
    for bucket in ("ts-hot", "ts-cold"):
        s3.create_bucket(Bucket=bucket)
    dsn = f"host=127.0.0.1 user=postgres dbname={os.environ['S3STRATA_TEST_DB_NAME']}"
    if mode == "prisma-first":
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(PRISMA_SQL)
    os.environ["S3STRATA_TEST_SETTINGS"] = json.dumps(
        {
            "ENDPOINT": host,
            "PORT": port,
            "USE_SSL": False,
            "ACCESS_KEY": "k",
            "SECRET_KEY": "s",
            "HOT_BUCKET": "ts-hot",
            "COLD_BUCKET": "ts-cold",
            "SHARED_TABLE": True,
            "ADVANCED": {"ORPHAN_GRACE_PERIOD": 0},
        }
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", fake_initial=True, verbosity=0)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if mode == "django-first":
            check_schema(conn)
        # A row as s3strata-ts writes it: naive UTC with milliseconds, the enum value, a private/ key,
        # created_at left to the column's default.
        key = f"private/{uuid.uuid4()}-report.pdf"
        s3.put_object(Bucket="ts-hot", Key=key, Body=b"%PDF from TypeScript", ContentType="application/pdf")
        past = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=5)
        conn.execute(
            'INSERT INTO "PhysicalFile" (storage_tier, filename, path, hot_until, updated_at) '
            "VALUES ('HOT', 'report.pdf', %s, %s, %s)",
            (key, past.replace(microsecond=123000), past),
        )

    from django_s3strata import get_file_manager, operations
    from django_s3strata.core import StorageTier
    from django_s3strata.models import PhysicalFile

    for tier in StorageTier:
        get_file_manager().objectstore.apply_public_read_policy(tier)
    assert PhysicalFile._meta.db_table == "PhysicalFile"
    row = PhysicalFile.objects.get()
    assert row.hot_until is not None and row.hot_until.tzinfo is not None, row.hot_until
    assert abs(row.hot_until - past.replace(tzinfo=UTC, microsecond=123000)) < timedelta(milliseconds=1)
    assert fetch(row.url) == b"%PDF from TypeScript"
    assert list(PhysicalFile.objects.expired()) == [row]
    assert operations.archive_expired().moved == 1
    row.refresh_from_db()
    assert row.storage_tier == "COLD" and fetch(row.url) == b"%PDF from TypeScript"
    row.set_visibility("PUBLIC")
    assert row.path.startswith("public/") and fetch(row.url) == b"%PDF from TypeScript"
    s3.put_object(Bucket="ts-hot", Key="public/orphan-from-ts.png", Body=b"png")
    assert operations.sweep_orphans("adopt").adopted == 1

    from django_s3strata.core import UploadOptions

    made = get_file_manager().sync.upload(b"from django", UploadOptions(filename="d.txt", hot_duration=60))
    with psycopg.connect(dsn) as conn:
        tier, path, hot_until, created, updated, kind = conn.execute(
            "SELECT storage_tier::text, path, hot_until, created_at, updated_at, pg_typeof(storage_tier)::text "
            'FROM "PhysicalFile" WHERE id = %s',
            (made.pk,),
        ).fetchone()
        assert (tier, kind, path) == ("HOT", '"StorageTier"', made.path), (tier, kind, path)
        for stamp in (hot_until, created, updated):
            assert stamp.tzinfo is None and stamp.microsecond % 1000 == 0, stamp  # naive UTC, milliseconds
        now = datetime.now(UTC).replace(tzinfo=None)
        assert abs(created - now) < timedelta(minutes=1) and abs(hot_until - (now + timedelta(seconds=60))) < timedelta(minutes=1)
        rows = conn.execute('SELECT count(*) FROM "PhysicalFile"').fetchone()
        assert rows == (3,), rows
    server.stop()
    print("interop: ok")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    main(sys.argv[1])
