"""URLs of the example site's file pages."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "files"
urlpatterns = [
    path("", views.index, name="index"),
    path("files/<int:pk>/download/", views.download, name="download"),
    path("files/<int:pk>/change/", views.change, name="change"),
    path("archival/", views.archival, name="archival"),
]
