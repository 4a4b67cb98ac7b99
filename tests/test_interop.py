"""A table and buckets shared with s3strata-ts: Prisma makes the table first, Django adopts it (PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["prisma-first", "django-first"])
def test_shared_table(mode: str) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the shared table is a PostgreSQL (Prisma) table")
    import psycopg

    name = f"s3strata_prisma_{uuid.uuid4().hex[:8]}"
    admin_dsn = "host=127.0.0.1 user=postgres dbname=postgres"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("S3STRATA_")}
        env.update(S3STRATA_TEST_DB_NAME=name, DJANGO_SETTINGS_MODULE="tests.settings", PYTHONPATH=str(ROOT))
        run = subprocess.run(
            [sys.executable, "tests/interop_prisma.py", mode], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0 and "interop: ok" in run.stdout, run.stdout[-3000:] + run.stderr[-5000:]
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
