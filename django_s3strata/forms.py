"""Form field and widget for direct browser-to-S3 uploads, with a plain upload when JavaScript is off."""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.urls import NoReverseMatch, reverse

from .core.exceptions import FileTooLargeError, InvalidKeyError
from .uploads import UploadPolicy, UploadRejectedError, check_file, check_ref

__all__ = ["DirectUploadField", "DirectUploadRef", "DirectUploadWidget"]

logger = logging.getLogger(__name__)


class DirectUploadRef(str):
    """The signed reference a browser submits after uploading straight to S3."""

    __slots__ = ()


def _urls() -> tuple[str, str, str] | None:
    try:
        return (
            reverse("s3strata:direct-upload"),
            reverse("s3strata:direct-upload-finalize"),
            reverse("s3strata:direct-upload-parts"),
        )
    except NoReverseMatch:
        return None


class DirectUploadWidget(forms.ClearableFileInput):
    """A file input that uploads straight to S3 with a progress bar (JavaScript), else through Django.

    Include ``django_s3strata.urls`` in the URLconf; without them the widget is a plain file input.
    """

    template_name = "s3strata/widgets/direct_upload.html"

    class Media:
        js = ("s3strata/direct-upload.js",)
        css = {"all": ("s3strata/direct-upload.css",)}

    def __init__(self, policy: UploadPolicy | None = None, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.policy = policy or UploadPolicy()

    def ref_name(self, name: str) -> str:
        """Return the name of the hidden input that carries the uploaded file's ref."""
        return f"{name}__s3strata_ref"

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        urls = _urls()
        if urls is None:
            logger.warning("s3strata: include django_s3strata.urls in the URLconf for direct uploads; using plain uploads")
        elif isinstance(value, DirectUploadRef):
            # The hidden ref is the value: an empty, required file input would make the browser refuse
            # the form. The script makes the input required again if the ref is replaced (direct-upload.js).
            attrs = context["widget"]["attrs"]
            if attrs.pop("required", False):
                attrs["data-s3strata-required"] = "1"
        context["direct"] = (
            {
                "start": urls[0],
                "finalize": urls[1],
                "parts": urls[2],
                "policy": self.policy.sign(),
                "ref_name": self.ref_name(name),
                # A form shown again after an error keeps the file already uploaded.
                "ref": value if isinstance(value, DirectUploadRef) else "",
            }
            if urls
            else None
        )
        return context

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        ref = data.get(self.ref_name(name))
        if ref:
            return DirectUploadRef(ref)
        return super().value_from_datadict(data, files, name)

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return not data.get(self.ref_name(name)) and super().value_omitted_from_data(data, files, name)


class DirectUploadField(forms.FileField):
    """A file field whose value is the PhysicalFile a direct upload recorded, or an ordinary upload.

    Both are held to the widget's UploadPolicy: a ref only if it was uploaded under that policy
    (by the submitting user, with ``DirectUploadMiddleware``), a plain upload only if its size and
    type fit it.
    """

    widget = DirectUploadWidget

    @property
    def policy(self) -> UploadPolicy:
        """Return the policy uploads to this field must fit (the widget's)."""
        widget = self.widget
        # The admin wraps a foreign key's widget (RelatedFieldWidgetWrapper): the policy is inside.
        while not isinstance(getattr(widget, "policy", None), UploadPolicy) and getattr(widget, "widget", None) is not None:
            widget = widget.widget
        policy = getattr(widget, "policy", None)
        return policy if isinstance(policy, UploadPolicy) else UploadPolicy()

    def to_python(self, data: Any) -> Any:
        if isinstance(data, DirectUploadRef):
            try:
                return check_ref(data, self.policy)
            except UploadRejectedError as exc:
                raise ValidationError(str(exc), code="invalid_ref") from exc
        value = super().to_python(data)
        if value is not None and hasattr(value, "read"):
            try:
                check_file(self.policy, value)
            except FileTooLargeError as exc:
                raise ValidationError(str(exc), code="too_large") from exc
            except (UploadRejectedError, InvalidKeyError) as exc:
                raise ValidationError(str(exc), code="invalid_file") from exc
        return value

    def bound_data(self, data: Any, initial: Any) -> Any:
        return data if isinstance(data, DirectUploadRef) else super().bound_data(data, initial)
