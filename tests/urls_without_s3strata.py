"""A URLconf without django_s3strata.urls: direct-upload widgets fall back to plain file inputs."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
