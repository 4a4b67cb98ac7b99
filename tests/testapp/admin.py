"""Admin of the test project's models."""

from __future__ import annotations

from django.contrib import admin

from .models import Clip, Contract, Document, Report

admin.site.register(Document)
admin.site.register(Contract)
admin.site.register(Report)
admin.site.register(Clip)
