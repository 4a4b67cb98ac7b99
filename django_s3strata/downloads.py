"""The download view: a stable, permission-checked link that redirects to a short-lived URL of the file.

``s3strata:download`` answers ``files/<id>/`` (who may follow it: ``DOWNLOAD_AUTHORIZE``) and
``files/t/<token>/`` (a signed token, ``django_s3strata.links``: whoever holds it may). Both look
the row up when followed, so a link survives tier and visibility moves, and redirect (302,
``Cache-Control: private, no-store``) to a URL presigned for ``DOWNLOAD_URL_EXPIRES`` seconds that
makes S3 answer with ``Content-Disposition`` and the file's own name (a token's signed disposition,
or ``?disposition=`` on a link by id). PUBLIC files are presigned
too: only a signed request can ask S3 for that header, and the link then works before the bucket
policy makes the public prefix readable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import BadRequest, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.utils.module_loading import import_string
from django.views.decorators.http import require_safe

from . import conf
from .core.contenttypes import content_disposition, guess_content_type, is_active
from .core.exceptions import S3StrataError
from .core.types import FileVisibility, GetUrlOptions
from .links import DISPOSITIONS, ExpiredLinkError, InvalidLinkError, load_token_data
from .models import PhysicalFile
from .services import get_file_manager

__all__ = ["authorize", "default_authorize", "download", "redirect_to_file"]

logger = logging.getLogger(__name__)


def default_authorize(request: HttpRequest, file: PhysicalFile) -> bool:
    """Allow PUBLIC files to anyone, PRIVATE files to users with ``s3strata.view_physicalfile`` (or change, as the admin)."""
    if file.visibility is FileVisibility.PUBLIC:
        return True
    user = getattr(request, "user", None)
    return bool(
        user is not None and (user.has_perm("s3strata.view_physicalfile") or user.has_perm("s3strata.change_physicalfile"))
    )


def authorize(request: HttpRequest, file: PhysicalFile) -> bool:
    """Return whether ``request`` may download ``file`` by its id (``DOWNLOAD_AUTHORIZE``, else the default)."""
    hook: Callable[[HttpRequest, PhysicalFile], bool] | str | None = conf.get_settings().options["DOWNLOAD_AUTHORIZE"]
    check = default_authorize if hook is None else import_string(hook) if isinstance(hook, str) else hook
    return bool(check(request, file))


def _disposition(request: HttpRequest, file: PhysicalFile, given: str | None = None) -> str:
    asked = given or request.GET.get("disposition") or conf.get_settings().options["DOWNLOAD_DISPOSITION"]
    if asked not in DISPOSITIONS:
        raise BadRequest(f"disposition={asked!r} is invalid: use 'attachment' or 'inline'.")
    # Never inline what a browser would run as a page of the bucket's origin (core/contenttypes.py).
    content_type = file.content_type or guess_content_type(file.filename)
    if asked == "inline" and is_active(content_type) and get_file_manager(file.config).config.advanced.active_content != "inline":
        asked = "attachment"
    return content_disposition(asked, file.filename)


def redirect_to_file(request: HttpRequest, file: PhysicalFile, disposition: str | None = None) -> HttpResponseRedirect:
    """Return the 302 to a presigned URL of ``file`` where it is now (no S3 request).

    ``disposition``: the link's own (a token's); None: ``?disposition=``, else ``DOWNLOAD_DISPOSITION``.
    """
    options = GetUrlOptions(
        conf.get_settings().options["DOWNLOAD_URL_EXPIRES"], _disposition(request, file, disposition), presign=True
    )
    try:
        url = str(get_file_manager(file.config).sync.get_url(file, options))  # the row's own bucket pair
    except S3StrataError as exc:  # a row whose path is outside its tier's prefixes has no URL
        logger.warning("s3strata: no download URL for file %s: %s", file.pk, exc)
        raise Http404("This file cannot be downloaded.") from exc
    response = HttpResponseRedirect(url)
    # The URL is a credential for its lifetime: no shared cache may keep it, nor the browser.
    response["Cache-Control"] = "private, no-store"
    return response


def _record(pk: Any) -> PhysicalFile:
    record = PhysicalFile.objects.filter(pk=pk).first()
    if record is None:
        raise Http404("No such file.")
    return record


@require_safe
def download(request: HttpRequest, pk: int | None = None, token: str | None = None) -> HttpResponseRedirect:
    """Redirect to the file named by ``pk`` (if ``DOWNLOAD_AUTHORIZE`` allows) or by a signed ``token``."""
    if token is not None:
        try:
            pk, signed = load_token_data(token)
        except ExpiredLinkError as exc:
            raise PermissionDenied(str(exc)) from None
        except InvalidLinkError:
            raise Http404("No such download link.") from None
        # Only what was signed: a ?disposition= anyone may add to a token link is ignored.
        disposition = signed or conf.get_settings().options["DOWNLOAD_DISPOSITION"]
        return redirect_to_file(request, _record(pk), disposition)
    record = _record(pk)
    try:
        allowed = authorize(request, record)
    except S3StrataError as exc:  # the default reads the visibility from the path
        logger.warning("s3strata: cannot authorize a download of file %s: %s", record.pk, exc)
        raise Http404("This file cannot be downloaded.") from exc
    if not allowed:
        raise PermissionDenied("You may not download this file.")
    return redirect_to_file(request, record)
