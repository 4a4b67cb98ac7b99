"""Django REST framework: a serializer field for a PhysicalFile (``pip install 'django-s3strata[drf]'``).

It renders ``{id, url, name, size, content_type, tier, visibility, restore_status}`` with no
query (after ``select_related``) and no S3 request (``url`` is null for a file in the deep
archive that is not restored: ``restore_status`` says why), and accepts a multipart upload or a direct-upload ref
(``docs/direct-uploads.md``), both held to the upload policy of the model's ``PhysicalFileField``
(its tier, visibility, ``upload_to`` and the ``DIRECT_UPLOAD_*`` size and type bounds). An upload
is stored by the model field when the row is saved, as any Django ``File`` assigned to it.
"""

from __future__ import annotations

import contextlib
from typing import Any

try:
    from rest_framework import serializers
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "django_s3strata.contrib.rest_framework needs Django REST framework: pip install 'django-s3strata[drf]'."
    ) from exc

from django.core.exceptions import FieldDoesNotExist

from ..core.exceptions import FileTooLargeError, InvalidKeyError, S3StrataError
from ..fields import PhysicalFileField
from ..links import parse_url_mode
from ..models import PhysicalFile
from ..uploads import UploadPolicy, UploadRejectedError, check_file, check_ref, requester

__all__ = ["PhysicalFileSerializerField"]


class PhysicalFileSerializerField(serializers.Field):  # type: ignore[misc]
    """A PhysicalFile as ``{id, url, name, size, content_type, tier, visibility, restore_status}``; written as an upload or a ref.

    ``url_mode``: ``"direct"`` (the object's direct or presigned URL), ``"view"`` or ``"signed"``
    (the download view's absolute link, which survives moves); by default the model field's
    ``url_mode``. ``policy``: the UploadPolicy uploads and refs must fit; by default the model
    field's. ``allow_uploads``/``allow_refs`` turn either way of sending a file off.
    """

    default_error_messages = {
        "invalid": "Send a file (a multipart upload) or the ref of a direct upload (a string).",
        "no_uploads": "This field takes the ref of a direct upload, not a file.",
        "no_refs": "This field takes a file (a multipart upload), not a ref.",
        "empty": "The submitted file is empty.",
    }

    def __init__(
        self,
        *,
        url_mode: str | None = None,
        policy: UploadPolicy | None = None,
        allow_uploads: bool = True,
        allow_refs: bool = True,
        **kwargs: Any,
    ) -> None:
        self.url_mode = parse_url_mode(url_mode) if url_mode is not None else None
        self.policy = policy
        self.allow_uploads = allow_uploads
        self.allow_refs = allow_refs
        super().__init__(**kwargs)

    # -- where the options come from ------------------------------------------------------

    def model_field(self) -> PhysicalFileField | None:
        """Return the PhysicalFileField this field's source names on a ModelSerializer's model, or None."""
        model = getattr(getattr(self.parent, "Meta", None), "model", None)
        if model is None or not self.source or "." in self.source:
            return None
        try:
            field = model._meta.get_field(self.source)
        except FieldDoesNotExist:
            return None
        return field if isinstance(field, PhysicalFileField) else None

    def upload_policy(self) -> UploadPolicy:
        """Return the policy uploads and refs are held to."""
        if self.policy is not None:
            return self.policy
        field = self.model_field()
        return field.upload_policy() if field is not None else UploadPolicy()

    def _url_mode(self) -> str:
        if self.url_mode is not None:
            return self.url_mode
        field = self.model_field()
        return field.url_mode if field is not None else "direct"

    # -- reading ------------------------------------------------------------------------------

    def to_representation(self, value: PhysicalFile) -> dict[str, Any]:
        mode = self._url_mode()
        status = value.restore_status  # what the row knows: no S3 request
        url: str | None
        if not status.retrievable:
            # Archived and not restored: no link works (the object's URL raises ObjectArchivedError,
            # the download view answers 404), and one such row must not fail a whole list.
            url = None
        elif mode == "direct":
            url = value.get_url()
        else:
            url = value.download_url(signed=mode == "signed")
            request = self.context.get("request")
            if request is not None:
                url = request.build_absolute_uri(url)
        try:
            visibility: str | None = value.visibility.value
        except S3StrataError:  # a path outside the configured prefixes
            visibility = None
        return {
            "id": value.pk,
            "url": url,
            "name": value.filename,
            "size": value.size,
            "content_type": value.content_type,
            "tier": value.storage_tier,
            "visibility": visibility,
            "restore_status": status.state.value,
        }

    # -- writing ------------------------------------------------------------------------------

    def to_internal_value(self, data: Any) -> Any:
        policy = self.upload_policy()
        if isinstance(data, str):
            if not self.allow_refs:
                self.fail("no_refs")
            request = self.context.get("request")
            # The ref must be the requesting user's own upload (as DirectUploadMiddleware makes forms check).
            scope = requester(request) if request is not None else contextlib.nullcontext()
            with scope:
                try:
                    return check_ref(data, policy)
                except UploadRejectedError as exc:
                    raise serializers.ValidationError(str(exc), code="invalid_ref") from exc
        if hasattr(data, "read") and hasattr(data, "name"):
            if not self.allow_uploads:
                self.fail("no_uploads")
            if getattr(data, "size", None) == 0:
                self.fail("empty")
            try:
                check_file(policy, data)
            except FileTooLargeError as exc:
                raise serializers.ValidationError(str(exc), code="too_large") from exc
            except (UploadRejectedError, InvalidKeyError) as exc:
                raise serializers.ValidationError(str(exc), code="invalid_file") from exc
            return data  # the model field stores it with its own options when the row is saved
        self.fail("invalid")
