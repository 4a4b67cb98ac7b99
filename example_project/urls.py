"""URLs of the example site."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("s3strata/", include("django_s3strata.urls")),
    path("", include("example_project.files.urls")),
]
