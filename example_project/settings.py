"""Settings of the example site: SQLite beside the project unless DATABASE_URL-style variables say otherwise."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("S3STRATA_DEMO_DATA", BASE_DIR / "demo-data"))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-project-not-for-production")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_s3strata",
    "example_project.files",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_s3strata.middleware.DirectUploadMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "example_project.urls"
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
WSGI_APPLICATION = "example_project.wsgi.application"
DATA_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DATA_DIR / "db.sqlite3"}}
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-s3strata: every value can come from the environment (see docs/django.md). With no
# S3STRATA_ENDPOINT, `manage.py demo` starts an in-process S3 server and fills in its port.
S3STRATA_EMBEDDED = not os.environ.get("S3STRATA_ENDPOINT")
S3STRATA = {
    "ENDPOINT": os.environ.get("S3STRATA_ENDPOINT", "127.0.0.1"),
    "PORT": int(os.environ.get("S3STRATA_PORT", "443" if os.environ.get("S3STRATA_USE_SSL", "") == "true" else "80")),
    "USE_SSL": os.environ.get("S3STRATA_USE_SSL", "false").lower() in ("1", "true", "yes"),
    "ACCESS_KEY": os.environ.get("S3STRATA_ACCESS_KEY", "demo"),
    "SECRET_KEY": os.environ.get("S3STRATA_SECRET_KEY", "demo-secret"),
    "HOT_BUCKET": os.environ.get("S3STRATA_HOT_BUCKET", "demo-hot"),
    "COLD_BUCKET": os.environ.get("S3STRATA_COLD_BUCKET", "demo-cold"),
    # Two hours: a direct upload's grant (DIRECT_UPLOAD_EXPIRES, one hour) plus the hour it may take to
    # finalise; a shorter grace period would let the sweep delete uploads in flight (check s3strata.E007).
    "ADVANCED": {"ORPHAN_GRACE_PERIOD": int(os.environ.get("S3STRATA_ORPHAN_GRACE_PERIOD", "7200"))},
    # The demo lets every visitor upload straight to S3, as its plain upload form does. A real site keeps
    # the default (signed-in users with s3strata.add_physicalfile) or names its own check here.
    "DIRECT_UPLOAD_AUTHORIZE": "example_project.files.views.anyone_may_upload",
}
STATIC_ROOT = DATA_DIR / "static"
