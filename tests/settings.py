"""Django settings for the test suite: the database from S3STRATA_TEST_DB, else PostgreSQL when reachable, else SQLite.

``S3STRATA_TEST_DB`` is ``postgresql``, ``mariadb`` or ``sqlite`` (tox.ini sets it per environment);
a database named there and not reachable fails the run instead of falling back. Unset, the suite
runs on PostgreSQL at 127.0.0.1:5432 when it answers, else on SQLite.
"""

from __future__ import annotations

import os
import socket
import tempfile
from typing import Any

VENDORS = ("postgresql", "mariadb", "sqlite")


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), 1):
            return True
    except OSError:
        return False


def _pg_address() -> tuple[str, int]:
    return os.environ.get("PGHOST", "127.0.0.1"), int(os.environ.get("PGPORT", "5432"))


def _mariadb_address() -> tuple[str, int]:
    return os.environ.get("S3STRATA_TEST_MARIADB_HOST", "127.0.0.1"), int(os.environ.get("S3STRATA_TEST_MARIADB_PORT", "3306"))


def reachable(vendor: str) -> bool:
    """Return True when ``vendor``'s server answers here and its driver imports (SQLite always)."""
    if vendor == "sqlite":
        return True
    try:
        if vendor == "postgresql":
            import psycopg  # noqa: F401
        else:
            import MySQLdb  # noqa: F401
    except ImportError:
        return False
    return _answers(*(_pg_address() if vendor == "postgresql" else _mariadb_address()))


def database(vendor: str, tag: str = "") -> dict[str, Any]:
    """Return the DATABASES entry for ``vendor``; ``tag`` keeps a second alias's test database apart."""
    # One test database per run (and per alias), so that two runs on one server never share it.
    test_name = f"test_s3strata{tag}_{os.getpid()}"
    if vendor == "postgresql":
        host, port = _pg_address()
        return {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": host,
            "PORT": str(port),
            "USER": os.environ.get("PGUSER", "postgres"),
            "NAME": os.environ.get("PGDATABASE", "test"),
            "TEST": {"NAME": test_name},
        }
    if vendor == "mariadb":
        host, port = _mariadb_address()
        return {
            "ENGINE": "django.db.backends.mysql",
            "HOST": host,
            "PORT": str(port),
            "USER": os.environ.get("S3STRATA_TEST_MARIADB_USER", "root"),
            "PASSWORD": os.environ.get("S3STRATA_TEST_MARIADB_PASSWORD", ""),
            "NAME": os.environ.get("S3STRATA_TEST_MARIADB_NAME", "test"),
            "OPTIONS": {"charset": "utf8mb4"},
            "TEST": {"NAME": test_name, "CHARSET": "utf8mb4"},
        }
    # A file, not ":memory:": the threads of a test get connections of their own (an in-memory
    # database shared between threads locks whole tables), and Celery worker processes open it too.
    path = os.path.join(tempfile.gettempdir(), f"s3strata-tests{tag}-{os.getpid()}.sqlite3")
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        # Writers queue for the lock (IMMEDIATE: taken at BEGIN) instead of failing at once.
        "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
        "TEST": {"NAME": path},
    }


TEST_DB = os.environ.get("S3STRATA_TEST_DB", "") or ("postgresql" if reachable("postgresql") else "sqlite")
if TEST_DB not in VENDORS:
    raise RuntimeError(f"S3STRATA_TEST_DB={TEST_DB!r}: use one of {', '.join(VENDORS)}")
if not reachable(TEST_DB):
    raise RuntimeError(f"S3STRATA_TEST_DB={TEST_DB}, but its server does not answer here (or its driver is not installed)")
# Celery workers and the reliability tests' worker processes inherit the environment: they open
# the same kind of database, by the name the tests give them in S3STRATA_TEST_DB_NAME.
os.environ["S3STRATA_TEST_DB"] = TEST_DB

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_s3strata",
    "tests.testapp",
]
STORAGES = {
    "default": {"BACKEND": "django_s3strata.storage.S3StrataStorage", "OPTIONS": {"visibility": "PRIVATE"}},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# "default" is the suite's database; "files_<vendor>" are the second databases that
# tests/test_routing.py routes PhysicalFile to (tests/routers.py), one per server that answers here.
# A test database is made only for the aliases that the collected tests ask for.
DATABASES = {"default": database(TEST_DB)}
DATABASES.update({f"files_{v}": database(v, tag="_files") for v in VENDORS if reachable(v)})
DATABASE_ROUTERS: list[Any] = []
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Replaced per test by the `s3strata_settings` fixture with a live S3 server's address.
S3STRATA = {
    "ENDPOINT": "127.0.0.1",
    "PORT": 9,
    "USE_SSL": False,
    "ACCESS_KEY": "unset",
    "SECRET_KEY": "unset",
    "HOT_BUCKET": "unset-hot",
    "COLD_BUCKET": "unset-cold",
}
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_s3strata.middleware.DirectUploadMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
STATIC_URL = "/static/"
MEDIA_URL = "/media/"
MEDIA_ROOT = os.path.join(os.path.dirname(__file__), "media-unused")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Celery worker processes started by the task tests read their database, S3 and schedule from here.
if os.environ.get("S3STRATA_TEST_DB_NAME"):
    DATABASES["default"]["NAME"] = os.environ["S3STRATA_TEST_DB_NAME"]
if os.environ.get("S3STRATA_TEST_SETTINGS"):
    import json

    S3STRATA = json.loads(os.environ["S3STRATA_TEST_SETTINGS"])
CELERY_BROKER_URL = os.environ.get("S3STRATA_TEST_BROKER", "redis://127.0.0.1:6379/15")
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("S3STRATA_TEST_QUEUE", "s3strata-tests")
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
CELERY_TASK_SERIALIZER = CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
if os.environ.get("S3STRATA_TEST_BEAT"):
    import json as _json

    CELERY_BEAT_SCHEDULE = _json.loads(os.environ["S3STRATA_TEST_BEAT"])
