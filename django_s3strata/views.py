"""JSON views of direct browser-to-S3 uploads: start (a grant), parts (more part URLs) and finalize (the record)."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from .core.exceptions import FileTooLargeError, S3StrataError, StorageError
from .uploads import (
    UploadNotFinishedError,
    UploadPolicy,
    UploadRateLimitedError,
    finalize_upload,
    sign_parts,
    start_upload,
)

__all__ = ["finalize", "parts", "start"]

logger = logging.getLogger(__name__)


def _payload(request: HttpRequest) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise _BadRequest("The request body must be a JSON object.")
        return data
    return {name: request.POST.get(name) for name in request.POST}


class _BadRequest(Exception):
    pass


def _error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _answer(handler: Any, request: HttpRequest) -> JsonResponse:
    try:
        return JsonResponse(handler(_payload(request)))
    except _BadRequest as exc:
        return _error(str(exc), 400)
    except PermissionDenied as exc:
        return _error(str(exc) or "Permission denied.", 403)
    except FileTooLargeError as exc:
        return _error(str(exc), 413)
    except UploadRateLimitedError as exc:
        response = _error(str(exc), 429)
        response["Retry-After"] = str(exc.retry_after)
        return response
    except UploadNotFinishedError as exc:
        return _error(str(exc), 409)
    except StorageError as exc:
        logger.warning("s3strata: direct upload failed: %s", exc)
        return _error("The storage service failed; try again later.", 503 if exc.transient else 502)
    except (S3StrataError, ValueError) as exc:
        return _error(str(exc), 400)


def _size(value: Any) -> Any:
    # Form posts carry strings; JSON carries numbers. Anything else is refused by start_upload.
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20 else value


@never_cache
@require_POST
def start(request: HttpRequest) -> JsonResponse:
    """Grant one upload: ``{filename, size, content_type?, policy?}`` -> POST fields or part URLs, and a ticket."""

    def handle(data: dict[str, Any]) -> dict[str, Any]:
        policy = UploadPolicy.load(data.get("policy"))
        return start_upload(request, policy, data.get("filename"), _size(data.get("size")), data.get("content_type"))

    return _answer(handle, request)


@never_cache
@require_POST
def finalize(request: HttpRequest) -> JsonResponse:
    """Record a finished upload: ``{ticket}`` -> ``{id, ref, filename, size, content_type, tier, url}``."""

    def handle(data: dict[str, Any]) -> dict[str, Any]:
        done = finalize_upload(request, data.get("ticket"))
        record = done.file
        return {
            "id": record.pk,
            "ref": done.ref,
            "filename": record.filename,
            "size": record.size,
            "content_type": record.content_type,
            "tier": str(record.storage_tier),
        }

    return _answer(handle, request)


@never_cache
@require_POST
def parts(request: HttpRequest) -> JsonResponse:
    """Sign more part URLs of a multipart grant: ``{ticket, first, last}`` -> ``{parts: [{number, size, url}]}``."""

    def handle(data: dict[str, Any]) -> dict[str, Any]:
        return sign_parts(request, data.get("ticket"), _size(data.get("first")), _size(data.get("last")))

    return _answer(handle, request)
