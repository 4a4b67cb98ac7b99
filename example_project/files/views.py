"""The example site's pages: upload, list, download, change tier or visibility, what archival would move."""

from __future__ import annotations

import posixpath
from typing import Any

from django import forms
from django.contrib import messages
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from django_s3strata.core import S3StrataError
from django_s3strata.core.keys import unique_suffix
from django_s3strata.forms import DirectUploadField
from django_s3strata.models import PhysicalFile
from django_s3strata.services import store_upload
from django_s3strata.uploads import UploadPolicy

TIERS = [("HOT", "HOT"), ("COLD", "COLD")]
VISIBILITIES = [("PRIVATE", "PRIVATE"), ("PUBLIC", "PUBLIC")]
# A direct upload goes where its signed policy says; the page swaps the widget's policy when the
# tier or visibility changes (files/demo.js), and the form accepts a ref of the chosen one only.
POLICIES = {(tier, vis): UploadPolicy(tier=tier, visibility=vis) for tier, _ in TIERS for vis, _ in VISIBILITIES}


class UploadForm(forms.Form):
    file = forms.FileField()
    tier = forms.ChoiceField(choices=TIERS, initial="HOT")
    visibility = forms.ChoiceField(choices=VISIBILITIES, initial="PRIVATE")
    hot_duration = forms.IntegerField(required=False, min_value=0, help_text="Seconds in HOT before archival; empty: forever.")


class DirectUploadForm(forms.Form):
    """The browser sends the file straight to S3 under the policy of the chosen placement; the form carries a signed ref."""

    # Not required: a form posted without them (a script, an old page) means HOT and PRIVATE.
    tier = forms.ChoiceField(choices=TIERS, initial="HOT", required=False)
    visibility = forms.ChoiceField(choices=VISIBILITIES, initial="PRIVATE", required=False)
    file = DirectUploadField(label="File")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"].widget.policy = POLICIES[self.placement()]

    def placement(self) -> tuple[str, str]:
        """Return the (tier, visibility) chosen, HOT and PRIVATE when missing or unknown."""
        tier, visibility = self["tier"].value() or "HOT", self["visibility"].value() or "PRIVATE"
        return (tier, visibility) if (tier, visibility) in POLICIES else ("HOT", "PRIVATE")

    @staticmethod
    def policies() -> dict[str, str]:
        """Return the signed policy of each "TIER VISIBILITY" pair, for the page's script."""
        return {f"{tier} {visibility}": policy.sign() for (tier, visibility), policy in POLICIES.items()}


def anyone_may_upload(request: HttpRequest, policy: UploadPolicy) -> bool:
    """The demo's DIRECT_UPLOAD_AUTHORIZE hook: every visitor may upload, as with the plain form. Not for production."""
    return True


def index(request: HttpRequest) -> HttpResponse:
    """List the files with their tier, visibility and URL, and take uploads (through Django, or straight to S3)."""
    direct_post = request.method == "POST" and "direct" in request.POST
    direct = DirectUploadForm(request.POST or None, request.FILES or None, prefix="direct") if direct_post else None
    form = UploadForm(request.POST or None, request.FILES or None) if not direct_post else UploadForm()
    if direct is not None and direct.is_valid():
        value = direct.cleaned_data["file"]
        try:
            # Without JavaScript the file came through Django: store it the ordinary way.
            record = (
                value
                if isinstance(value, PhysicalFile)
                else store_upload(value, *unique_suffix(posixpath.basename(value.name)), *direct.placement())
            )
        except S3StrataError as exc:
            messages.error(request, f"Upload failed: {exc}")
        else:
            messages.success(request, f"Stored {record.filename} in {record.storage_tier}.")
            return redirect("files:index")
    # The page's script sends the plain form with XMLHttpRequest, to show its upload progress.
    by_script = request.headers.get("X-Requested-With") == "XMLHttpRequest"
    if request.method == "POST" and not direct_post and form.is_valid():
        upload = form.cleaned_data["file"]
        name, suffix = unique_suffix(posixpath.basename(upload.name))
        try:
            record = store_upload(
                upload,
                name,
                suffix,
                form.cleaned_data["tier"],
                form.cleaned_data["visibility"],
                form.cleaned_data["hot_duration"],
            )
        except S3StrataError as exc:
            messages.error(request, f"Upload failed: {exc}")
        else:
            messages.success(request, f"Stored {record.filename} in {record.storage_tier}.")
            return JsonResponse({"location": reverse("files:index")}) if by_script else redirect("files:index")
        if by_script:
            return JsonResponse({"location": reverse("files:index")})  # the message says what failed
    if by_script and request.method == "POST" and not direct_post:
        errors = "; ".join(f"{name}: {' '.join(messages_)}" for name, messages_ in form.errors.items())
        return JsonResponse({"errors": errors}, status=400)
    files = PhysicalFile.objects.all()[:200]
    direct = direct or DirectUploadForm(prefix="direct")
    context = {"form": form, "direct": direct, "files": files, "policies": DirectUploadForm.policies()}
    return render(request, "files/index.html", context)


def download(request: HttpRequest, pk: int) -> FileResponse:
    """Stream a file's bytes through Django (the URL link goes straight to S3 instead)."""
    record = get_object_or_404(PhysicalFile, pk=pk)
    return FileResponse(record.open(), as_attachment=True, filename=record.filename, content_type=record.content_type)


@require_POST
def change(request: HttpRequest, pk: int) -> HttpResponse:
    """Move a file to the other tier or visibility."""
    record = get_object_or_404(PhysicalFile, pk=pk)
    what: Any = request.POST.get("to")
    try:
        if what in ("HOT", "COLD"):
            record.set_tier(what)
        elif what in ("PUBLIC", "PRIVATE"):
            record.set_visibility(what)
        elif what == "delete":
            record.delete()
            messages.success(request, f"Deleted {record.filename}.")
            return redirect("files:index")
        messages.success(request, f"{record.filename} is now {record.storage_tier}, {record.visibility.value}.")
    except S3StrataError as exc:
        messages.error(request, f"{record.filename}: {exc}")
    return redirect("files:index")


def archival(request: HttpRequest) -> HttpResponse:
    """Show what the next archival run would move, and run it on request."""
    if request.method == "POST":
        from django_s3strata import operations

        summary = operations.archive_expired()
        messages.success(request, f"Archived {summary.moved} file(s), {summary.failed} failed.")
        return redirect("files:archival")
    return render(
        request,
        "files/archival.html",
        {"expired": PhysicalFile.objects.expired(), "soon": PhysicalFile.objects.expiring_within(3600)},
    )
