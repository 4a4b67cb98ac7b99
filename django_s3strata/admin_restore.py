"""The admin's restore action: a confirmation page that states each archive class's delay and cost, then the engine.

The page asks for the retrieval tier and the days the restored copy stays, and hands the chosen
files to ``operations_restore.request_restores``: the same engine as the command and the task.
``PhysicalFileAdmin`` only declares the action.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .conf import get_settings
from .core.restore import MAX_RESTORE_DAYS, RESTORE_TIMES, RETRIEVALS, ArchiveState
from .models import PhysicalFile
from .operations_restore import archive_class, request_restores, restore_terms

__all__ = ["RestoreForm", "RestorePage"]


class RestoreForm(forms.Form):
    """How fast S3 retrieves the objects, and how long the restored copies stay readable."""

    retrieval = forms.ChoiceField(label=_("Retrieval tier"), choices=[(r, r) for r in RETRIEVALS])
    days = forms.IntegerField(label=_("Days readable"), min_value=1, max_value=MAX_RESTORE_DAYS)


class RestorePage:
    """The restore action's confirmation page and what its "apply" button runs."""

    template = "admin/django_s3strata/restore_confirm.html"

    def __init__(self, model_admin: admin.ModelAdmin) -> None:  # type: ignore[type-arg]
        self.model_admin = model_admin

    def action(self, request: HttpRequest, queryset: QuerySet[PhysicalFile]) -> HttpResponse | None:
        """Show the confirmation page; on "apply", request the restores and say what happened."""
        options = get_settings().options
        initial = {"retrieval": options["RESTORE_RETRIEVAL"], "days": options["RESTORE_DAYS"]}
        form = RestoreForm(request.POST if "apply" in request.POST else None, initial=initial)
        if "apply" in request.POST and form.is_valid():
            ids = list(queryset.values_list("pk", flat=True))
            self._report(request, request_restores(ids, days=form.cleaned_data["days"], retrieval=form.cleaned_data["retrieval"]))
            return None
        files = list(queryset)
        # No S3 request: the rows know their state; the engine looks again (one HEAD each) on "apply".
        rows = [(f, f.restore_status, archive_class(f)) for f in files]
        classes = sorted({c for _, status, c in rows if c and status.state is not ArchiveState.READABLE})
        terms = [(c, [(r, restore_terms(c, r)) for r in RETRIEVALS if r in RESTORE_TIMES.get(c, {})]) for c in classes]
        opts = self.model_admin.model._meta
        return TemplateResponse(
            request,
            self.template,
            {
                **self.model_admin.admin_site.each_context(request),
                "title": _("Request restore"),
                "form": form,
                "rows": rows,
                "terms": terms,
                "opts": opts,
                "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
                "action": "request_restore",
            },
        )

    def _report(self, request: HttpRequest, summary: Any) -> None:
        say = self.model_admin.message_user
        if summary.requested:
            n = len(summary.requested)
            say(
                request,
                ngettext(
                    "%(n)d restore requested (%(tier)s, %(days)d day(s)): the file moves on by itself once it completes.",
                    "%(n)d restores requested (%(tier)s, %(days)d day(s)): the files move on by themselves once they complete.",
                    n,
                )
                % {"n": n, "tier": summary.retrieval, "days": summary.days},
                messages.SUCCESS,
            )
        if summary.in_progress:
            n = len(summary.in_progress)
            say(
                request,
                ngettext(
                    "%(n)d file was already being restored: nothing changed.",
                    "%(n)d files were already being restored: nothing changed.",
                    n,
                )
                % {"n": n},
                messages.WARNING,
            )
        if summary.not_archived:
            n = len(summary.not_archived)
            say(
                request,
                ngettext(
                    "%(n)d file needs no restore: it is readable, or restored already.",
                    "%(n)d files need no restore: they are readable, or restored already.",
                    n,
                )
                % {"n": n},
                messages.WARNING,
            )
        for failure in summary.failed:
            say(
                request,
                _("File %(id)s (%(name)s) failed: %(error)s")
                % {"id": failure["id"], "name": failure["filename"], "error": failure["error"]},
                messages.ERROR,
            )
