"""Django settings for the test suite: PostgreSQL when reachable on 127.0.0.1:5432, else SQLite."""

from __future__ import annotations

import os
import socket


def _postgres_reachable() -> bool:
    if os.environ.get("S3STRATA_TEST_DB") == "sqlite":
        return False
    try:
        with socket.create_connection((os.environ.get("PGHOST", "127.0.0.1"), int(os.environ.get("PGPORT", "5432"))), 1):
            pass
    except OSError:
        return False
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return True


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
if _postgres_reachable():
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "NAME": os.environ.get("PGDATABASE", "test"),
            # One test database per run, so that two runs on one server never share it.
            "TEST": {"NAME": f"test_s3strata_{os.getpid()}"},
        }
    }
else:
    import tempfile

    # A file, not ":memory:": the threads of a test get connections of their own (an in-memory
    # database shared between threads locks whole tables), and Celery worker processes open it too.
    _sqlite = os.path.join(tempfile.gettempdir(), f"s3strata-tests-{os.getpid()}.sqlite3")
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _sqlite,
            # Writers queue for the lock (IMMEDIATE: taken at BEGIN) instead of failing at once.
            "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
            "TEST": {"NAME": _sqlite},
        }
    }
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
