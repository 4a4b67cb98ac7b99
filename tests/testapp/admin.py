"""Admin of the test project's models."""

from __future__ import annotations

from django.contrib import admin

from .models import Contract, Document, Report

admin.site.register(Document)
admin.site.register(Contract)
admin.site.register(Report)
