"""The Celery app of the test project (workers are started by tests/test_tasks.py)."""

from __future__ import annotations

import os

import django
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

app = Celery("s3strata_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.imports = ["django_s3strata.tasks"]
