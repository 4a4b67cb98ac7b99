"""The PhysicalFile admin: columns, filters, tier/visibility/hot-duration actions; it wires the orphans page."""

from __future__ import annotations

import contextlib
import posixpath
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import widgets
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Field, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext, ngettext_lazy

from . import operations
from .admin_orphans import OrphansPage
from .admin_restore import RestorePage
from .core.config import MAX_DURATION
from .core.exceptions import S3StrataError
from .core.keys import unique_suffix
from .core.types import FileVisibility, StorageTier
from .models import PhysicalFile

#: Selections larger than this are queued as a Celery task instead of run in the request.
QUEUE_THRESHOLD = 50
IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".avif")
#: The actions the change page offers as buttons, for the one file it shows.
CHANGE_PAGE_MOVES = ("move_to_hot", "move_to_cold", "make_public", "make_private")


@dataclass(frozen=True)
class ActionReport:
    """What a bulk action says: the work queued, the files it changed, and the files a move found already there."""

    queued: str
    done: str
    unchanged: str | None = None


#: Per ``operations.BULK_ACTIONS`` name; the messages are ngettext_lazy, counted by "n".
REPORTS = {
    "to_hot": ActionReport(
        _("moved to HOT"),
        # The core sets hot_until on a move to HOT only when a duration is given; the admin gives none.
        ngettext_lazy(
            "%(n)d file moved to HOT, with no hot duration (it stays HOT until moved).",
            "%(n)d files moved to HOT, with no hot duration (they stay HOT until moved).",
            "n",
        ),
        ngettext_lazy("%(n)d file was already in HOT.", "%(n)d files were already in HOT.", "n"),
    ),
    "to_cold": ActionReport(
        _("moved to COLD"),
        ngettext_lazy("%(n)d file moved to COLD.", "%(n)d files moved to COLD.", "n"),
        ngettext_lazy("%(n)d file was already in COLD.", "%(n)d files were already in COLD.", "n"),
    ),
    "archive": ActionReport(
        _("archived"),
        ngettext_lazy("%(n)d file archived to COLD.", "%(n)d files archived to COLD.", "n"),
        ngettext_lazy("%(n)d file was already in COLD.", "%(n)d files were already in COLD.", "n"),
    ),
    "make_public": ActionReport(
        _("made public"),
        ngettext_lazy("%(n)d file made public.", "%(n)d files made public.", "n"),
        ngettext_lazy("%(n)d file was already public.", "%(n)d files were already public.", "n"),
    ),
    "make_private": ActionReport(
        _("made private"),
        ngettext_lazy("%(n)d file made private.", "%(n)d files made private.", "n"),
        ngettext_lazy("%(n)d file was already private.", "%(n)d files were already private.", "n"),
    ),
    "set_hot_duration": ActionReport(
        _("got a new hot duration"),
        ngettext_lazy("%(n)d file got a new hot duration.", "%(n)d files got a new hot duration.", "n"),
    ),
    "delete": ActionReport(
        _("deleted with their objects"),
        ngettext_lazy("%(n)d file deleted with its object.", "%(n)d files deleted with their objects.", "n"),
    ),
}


class VisibilityFilter(admin.SimpleListFilter):
    title = _("visibility")
    parameter_name = "visibility"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("public", _("Public")), ("private", _("Private"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[PhysicalFile]) -> QuerySet[PhysicalFile]:
        if self.value() == "public":
            return queryset.public()  # type: ignore[attr-defined,no-any-return]
        if self.value() == "private":
            return queryset.private()  # type: ignore[attr-defined,no-any-return]
        return queryset


class ExpiryFilter(admin.SimpleListFilter):
    title = _("expiry")
    parameter_name = "expiry"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("expired", _("Expired (archived at the next run)")),
            ("soon", _("Expiring within 24 hours")),
            ("never", _("Never expires")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[PhysicalFile]) -> QuerySet[PhysicalFile]:
        if self.value() == "expired":
            return queryset.expired()  # type: ignore[attr-defined,no-any-return]
        if self.value() == "soon":
            return queryset.expiring_within(86400)  # type: ignore[attr-defined,no-any-return]
        if self.value() == "never":
            return queryset.filter(storage_tier=StorageTier.HOT.value, hot_until__isnull=True)
        return queryset


class HotDurationField(forms.IntegerField):
    """Whole seconds from 0 to MAX_DURATION (100 years), with errors a person can act on."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", MAX_DURATION)
        kwargs.setdefault(
            "error_messages",
            {
                "invalid": _("Enter a whole number of seconds, such as 86400 for one day."),
                "min_value": _("Enter 0 or more seconds."),
                "max_value": _("Enter at most %(limit_value)s seconds (100 years)."),
            },
        )
        super().__init__(**kwargs)


class UploadForm(forms.ModelForm):  # type: ignore[type-arg]
    """The add form: a file, where it goes, and when it leaves HOT."""

    upload = forms.FileField(label=_("File"))
    tier = forms.ChoiceField(choices=[(t.value, t.value) for t in StorageTier], initial=StorageTier.HOT.value)
    visibility = forms.ChoiceField(choices=[(v.value, v.value) for v in FileVisibility], initial=FileVisibility.PRIVATE.value)
    hot_duration = HotDurationField(
        label=_("Hot duration (seconds)"),
        required=False,
        help_text=_(
            "Seconds until the file is archived to COLD. HOT files only: a COLD file has none. "
            "Empty: the STORAGE_HOT_DURATION setting if set, else the file stays HOT until moved."
        ),
    )

    class Meta:
        model = PhysicalFile
        fields: list[str] = []


class HotDurationForm(forms.Form):
    """The intermediate page of "set hot duration"."""

    duration = HotDurationField(
        label=_("Hot duration (seconds)"),
        required=False,
        help_text=_("Empty: never expires. 0: archive at the next run."),
    )


def _action_part(action: Any, part: str) -> Any:
    """Return an admin action's ``func`` or ``description``: an ``Action`` on Django 6.1+, a tuple before."""
    if hasattr(action, part):
        return getattr(action, part)
    return action[{"func": 0, "description": 2}[part]]


@admin.register(PhysicalFile)
class PhysicalFileAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Files by tier and visibility; moves, hot durations and deletes as actions, and as buttons on the change page."""

    list_display = [
        "id",
        "filename",
        "storage_tier",
        "archive_label",
        "visibility_label",
        "size",
        "hot_until",
        "created_at",
        "open_link",
    ]
    list_filter = ["storage_tier", VisibilityFilter, ExpiryFilter]
    search_fields = ["filename", "path"]
    date_hierarchy = "created_at"
    list_per_page = 100
    readonly_fields = [
        "storage_tier",
        "visibility_label",
        "path",
        "hot_until",
        "size",
        "content_type",
        "created_at",
        "updated_at",
        "open_link",
        "preview",
    ]
    fields = ["filename", *readonly_fields]
    actions = [
        "move_to_hot",
        "move_to_cold",
        "make_public",
        "make_private",
        "set_hot_duration",
        "archive_now",
        "request_restore",
        "delete_with_objects",
    ]

    class Media:
        css = {"all": ("s3strata/admin.css",)}

    # -- columns -------------------------------------------------------------------

    @admin.display(description=_("visibility"))
    def visibility_label(self, obj: PhysicalFile) -> str:
        try:
            return obj.visibility.value
        except ValueError:
            return "?"

    @admin.display(description=_("archive"))
    def archive_label(self, obj: PhysicalFile) -> str:
        # From the row alone: a list page makes no S3 request.
        status = obj.restore_status
        pending = _(", then to %(tier)s") % {"tier": obj.restore_move_to} if obj.restore_move_to else ""
        if status.state.value == "READABLE":
            return "-"
        return format_html('<span style="white-space: nowrap">{}{}</span>', status, pending)

    def _url(self, obj: PhysicalFile) -> tuple[str | None, str]:
        """Return (URL, "") or, for a row whose path is outside its tier's prefixes, (None, why)."""
        try:
            # Pure CPU: a direct URL or a fresh presigned one, no S3 request.
            return obj.get_url(expires_in=3600), ""
        except S3StrataError as exc:  # a path no URL can be built for must not break the whole page
            return None, str(exc)

    def _open_url(self, obj: PhysicalFile) -> tuple[str | None, str]:
        """Return the download view's link (it survives moves), or the object's URL without ``django_s3strata.urls``."""
        url, why = self._url(obj)
        if url is None:
            return None, why
        try:
            return obj.download_url(disposition="inline"), ""
        except NoReverseMatch:
            return url, ""

    @admin.display(description=_("open"))
    def open_link(self, obj: PhysicalFile) -> str:
        url, why = self._open_url(obj)
        if url is None:
            return format_html('<span class="s3strata-no-link" title="{}">-</span>', why)
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, _("open"))

    @admin.display(description=_("preview"))
    def preview(self, obj: PhysicalFile) -> str:
        if obj.filename.lower().endswith(IMAGE_TYPES) or (obj.content_type or "").startswith("image/"):
            url, _why = self._url(obj)
            if url is not None:
                return format_html('<img src="{}" alt="" style="max-width: 480px; max-height: 360px">', url)
        return "-"

    # -- permissions -----------------------------------------------------------------

    def has_change_tier_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("s3strata.change_tier_physicalfile")  # type: ignore[union-attr]

    def has_change_visibility_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("s3strata.change_visibility_physicalfile")  # type: ignore[union-attr]

    def has_manage_orphans_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("s3strata.manage_orphans_physicalfile")  # type: ignore[union-attr]

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # Django 6.1 passes action_location; 5.2 does not know it.
        extra = {} if action_location is None else {"action_location": action_location}
        actions = super().get_actions(request, **extra)
        actions.pop("delete_selected", None)  # rows only: it would leave the objects behind
        return actions

    # -- add form: stream the upload ------------------------------------------------------

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = UploadForm
            kwargs["fields"] = ["upload", "tier", "visibility", "hot_duration"]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["upload", "tier", "visibility", "hot_duration"] if obj is None else self.fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [] if obj is None else self.readonly_fields

    def formfield_for_dbfield(self, db_field: Field[Any, Any], request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "filename":  # a TextField, but a name: one line, not a textarea
            kwargs["widget"] = widgets.AdminTextInputWidget(attrs={"class": "vTextField s3strata-filename"})
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: PhysicalFile, form: Any, change: bool) -> None:
        if change:
            obj.updated_at = timezone.now()
            super().save_model(request, obj, form, change)
            return
        from .services import store_upload

        upload = form.cleaned_data["upload"]
        name, suffix = unique_suffix(posixpath.basename(upload.name.replace("\\", "/")))
        tier, duration = StorageTier(form.cleaned_data["tier"]), form.cleaned_data["hot_duration"]
        record = store_upload(upload, name, suffix, tier, FileVisibility(form.cleaned_data["visibility"]), duration)
        if tier is StorageTier.COLD and duration is not None:  # the core stores no hot_until for COLD
            self.message_user(
                request, _("The hot duration was not used: the file went to COLD, and only HOT files have one."), messages.WARNING
            )
        obj.pk = record.pk
        obj.__dict__.update({k: v for k, v in record.__dict__.items() if not k.startswith("_")})

    def delete_model(self, request: HttpRequest, obj: PhysicalFile) -> None:
        obj.delete()  # the row, then the object

    # -- actions -----------------------------------------------------------------------

    def _run(self, request: HttpRequest, queryset: QuerySet[PhysicalFile], action: str, **kwargs: Any) -> None:
        """Run ``action`` (``operations.BULK_ACTIONS``) on the files, or queue it; say what changed, was so already, failed."""
        report = REPORTS[action]
        ids = list(queryset.values_list("pk", flat=True))
        if len(ids) > QUEUE_THRESHOLD:
            from .tasks import apply_file_action, enqueue_on_commit

            enqueue_on_commit(apply_file_action, ids, action, **kwargs)
            self.message_user(
                request,
                ngettext(
                    "%(n)d file is queued: %(what)s runs in the background.",
                    "%(n)d files are queued: %(what)s runs in the background.",
                    len(ids),
                )
                % {"n": len(ids), "what": report.queued},
                messages.INFO,
            )
            return
        result = operations.apply_to_files(ids, action, **kwargs)
        if result.succeeded:
            self.message_user(request, report.done % {"n": len(result.succeeded)}, messages.SUCCESS)
        if result.unchanged and report.unchanged is not None:
            self.message_user(request, report.unchanged % {"n": len(result.unchanged)}, messages.WARNING)
        for failure in result.failed:
            self.message_user(
                request,
                _("File %(id)s (%(name)s) failed: %(error)s")
                % {"id": failure["id"], "name": failure["filename"], "error": failure["error"]},
                messages.ERROR,
            )

    @admin.action(description=_("Move to HOT"), permissions=["change_tier"])
    def move_to_hot(self, request: HttpRequest, queryset: QuerySet[PhysicalFile]) -> None:
        self._run(request, queryset, "to_hot")

    @admin.action(description=_("Move to COLD"), permissions=["change_tier"])
    def move_to_cold(self, request: HttpRequest, queryset: QuerySet[PhysicalFile]) -> None:
        self._run(request, queryset, "to_cold")

    @admin.action(description=_("Archive now (to COLD)"), permissions=["change_tier"])
    def archive_now(self, request: HttpRequest, queryset: QuerySet[PhysicalFile]) -> None:
        self._run(request, queryset, "archive")

    @admin.action(description=_("Make public"), permissions=["change_visibility"])
    def make_public(self, request: HttpRequest, queryset: QuerySet[PhysicalFile]) -> None:
        self._run(request, queryset, "make_public")

    @admin.action(description=_("Make private"), permissions=["change_visibility"])
    def make_private(self, request: HttpRequest, queryset: QuerySet[PhysicalFile]) -> None:
        self._run(request, queryset, "make_private")

    @admin.action(description=_("Set hot duration…"), permissions=["change_tier"])
    def set_hot_duration(self, request: HttpRequest, queryset: QuerySet[PhysicalFile]) -> HttpResponse | None:
        hot = queryset.hot()  # type: ignore[attr-defined]
        hot_count = hot.count()
        left_out = queryset.count() - hot_count
        if not hot_count:
            self.message_user(
                request, _("None of the selected files is HOT: only HOT files have a hot duration."), messages.WARNING
            )
            return None
        form = HotDurationForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            self._run(request, hot, "set_hot_duration", duration=form.cleaned_data["duration"])
            if left_out:
                self.message_user(
                    request,
                    ngettext(
                        "%(n)d file was skipped: it is in COLD, and only HOT files have a hot duration.",
                        "%(n)d files were skipped: they are in COLD, and only HOT files have a hot duration.",
                        left_out,
                    )
                    % {"n": left_out},
                    messages.WARNING,
                )
            return None
        return TemplateResponse(
            request,
            "admin/django_s3strata/set_hot_duration.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Set hot duration"),
                "form": form,
                "files": hot,
                "left_out": left_out,
                "opts": self.model._meta,
                "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
                "action": "set_hot_duration",
            },
        )

    @admin.action(description=_("Request restore (archived files)…"), permissions=["change_tier"])
    def request_restore(self, request: HttpRequest, queryset: QuerySet[PhysicalFile]) -> HttpResponse | None:
        return RestorePage(self).action(request, queryset)

    @admin.action(description=_("Delete files and their objects…"), permissions=["delete"])
    def delete_with_objects(self, request: HttpRequest, queryset: QuerySet[PhysicalFile]) -> HttpResponse | None:
        if "apply" in request.POST:
            self._run(request, queryset, "delete")
            return None
        return TemplateResponse(
            request,
            "admin/django_s3strata/delete_with_objects.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Delete files and their objects"),
                "files": queryset,
                "opts": self.model._meta,
                "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
                "action": "delete_with_objects",
            },
        )

    # -- more pages: the orphans page, the change page's moves ---------------------------------

    def get_urls(self) -> list[Any]:
        extra = [
            path("orphans/", self.admin_site.admin_view(self.orphans_view), name="s3strata_physicalfile_orphans"),
            path("<path:object_id>/move/", self.admin_site.admin_view(self.move_view), name="s3strata_physicalfile_move"),
        ]
        return extra + super().get_urls()

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> HttpResponse:
        if change and obj is not None:
            context["s3strata_moves"] = self._moves(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _moves(self, request: HttpRequest, obj: PhysicalFile) -> list[tuple[str, str]]:
        """Return (action, label) for the moves of ``obj`` that this user may run: to the other tier and visibility."""
        wanted = ["move_to_cold" if obj.storage_tier == StorageTier.HOT.value else "move_to_hot"]
        with contextlib.suppress(ValueError):  # a path under neither of its tier's prefixes: no visibility to change
            wanted.append("make_private" if obj.visibility is FileVisibility.PUBLIC else "make_public")
        actions = self.get_actions(request)  # only those this user has the permission for
        return [(name, _action_part(actions[name], "description")) for name in wanted if name in actions]

    def move_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Run one of the move actions on one file from its change page: the list's action, permission and code."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        name = request.POST.get("action", "")
        actions = self.get_actions(request)
        if name not in CHANGE_PAGE_MOVES or name not in actions:
            raise PermissionDenied
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        run = _action_part(actions[name], "func")
        run(self, request, self.get_queryset(request).filter(pk=obj.pk))
        change = reverse("admin:s3strata_physicalfile_change", args=(quote(obj.pk),), current_app=self.admin_site.name)
        return HttpResponseRedirect(change)

    # -- the orphans page ------------------------------------------------------------------

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = {**(extra_context or {}), "can_manage_orphans": self.has_manage_orphans_permission(request)}
        return super().changelist_view(request, context)

    def orphans_view(self, request: HttpRequest) -> HttpResponse:
        """List orphans per tier; adopt or delete them after confirmation (see ``admin_orphans``)."""
        return OrphansPage(self).view(request)
