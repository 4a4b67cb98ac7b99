"""URLs of django-s3strata's views: ``path("s3strata/", include("django_s3strata.urls"))``."""

from __future__ import annotations

from django.urls import path

from . import downloads, views

app_name = "s3strata"

urlpatterns = [
    path("uploads/", views.start, name="direct-upload"),
    path("uploads/finalize/", views.finalize, name="direct-upload-finalize"),
    path("uploads/parts/", views.parts, name="direct-upload-parts"),
    # One name, two forms: reverse("s3strata:download", kwargs={"pk": ...}) or kwargs={"token": ...}.
    path("files/<int:pk>/", downloads.download, name="download"),
    path("files/t/<str:token>/", downloads.download, name="download"),
]
