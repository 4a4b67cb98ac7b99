"""PhysicalFileField: a relation to PhysicalFile that behaves like a file field for its model."""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable
from typing import Any

from django import forms
from django.core.files.base import File
from django.core.files.uploadedfile import UploadedFile
from django.db import models, transaction
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute, ForwardManyToOneDescriptor
from django.db.models.signals import post_delete, post_init, post_save
from django.utils import timezone
from django.utils.text import capfirst

from .core.config import parse_seconds, parse_tier, parse_visibility
from .core.exceptions import InvalidOptionError
from .core.keys import unique_suffix
from .core.types import FileVisibility, StorageTier
from .links import parse_url_mode

__all__ = ["PhysicalFileField"]

logger = logging.getLogger(__name__)

UploadTo = str | Callable[[Any, str], str]

#: Where an instance keeps the files assigned to its fields until its save stores them: {field name: File}.
PENDING = "_s3strata_pending"
#: Where an instance keeps the file ids its ``delete_on_replace`` fields had when loaded or last saved: {attname: id}.
SAVED = "_s3strata_saved"


def _drop_pending(instance: models.Model, name: str) -> None:
    pending = instance.__dict__.get(PENDING)
    if pending:
        pending.pop(name, None)


class PhysicalFileDescriptor(ForwardManyToOneDescriptor):  # type: ignore[misc]
    """``obj.attachment``: the PhysicalFile; a Django File assigned to it is held until the row is saved."""

    def __get__(self, instance: models.Model | None, cls: Any = None) -> Any:
        if instance is not None:
            pending = instance.__dict__.get(PENDING)
            if pending and self.field.name in pending:
                return pending[self.field.name]  # as FileField does: the assigned file until the save
        value = super().__get__(instance, cls)
        if instance is not None and value is not None and self.field.url_mode != "direct":
            value.url_mode = self.field.url_mode  # its .url is then the download view's
        return value

    def __set__(self, instance: models.Model, value: Any) -> None:
        if isinstance(value, File):
            self.field.hold(instance, value)
            return
        _drop_pending(instance, self.field.name)
        super().__set__(instance, value)


class PhysicalFileIdAttribute(ForeignKeyDeferredAttribute):  # type: ignore[misc]
    """``obj.attachment_id``: setting an id drops a file held for the next save (the id wins)."""

    def __set__(self, instance: models.Model, value: Any) -> None:
        if value is not None:  # full_clean() sets the empty id again while a file is held
            _drop_pending(instance, self.field.name)
        super().__set__(instance, value)


class PhysicalFileField(models.ForeignKey):  # type: ignore[type-arg]
    """A foreign key to PhysicalFile that accepts uploads in ModelForms and the admin, and Django Files in code.

    ``obj.attachment`` is the PhysicalFile (``.url``, ``.open()``, ``.set_tier()``...); after
    ``select_related("attachment")`` its URL costs no query. A Django ``File`` (an upload, a
    ``ContentFile``, ``File(open(...))``) assigned to it, or passed to the model's constructor, is
    stored when the owning row is saved, as with Django's FileField; then the attribute is its
    PhysicalFile. When the owning row is deleted the file stays, unless ``delete_with_owner=True``;
    when the owning row gets another file (or none) the old one stays, unless
    ``delete_on_replace=True``: then its row and object are deleted after the commit, if no other
    row references it. ``url_mode="view"`` (or ``"signed"``) makes ``obj.attachment.url`` the
    download view's link, which survives moves, instead of the object's own URL. ``config`` names
    the ``S3STRATA`` configuration (bucket pair) new files go to; the row records it, and every
    later operation on the file uses it.
    """

    descriptor_class = PhysicalFileIdAttribute
    forward_related_accessor_class = PhysicalFileDescriptor

    def __init__(
        self,
        to: str = "s3strata.PhysicalFile",
        on_delete: Callable[..., Any] = models.SET_NULL,
        *,
        tier: StorageTier | str | None = None,
        visibility: FileVisibility | str | None = None,
        hot_duration: int | None = None,
        upload_to: UploadTo = "",
        delete_with_owner: bool = False,
        direct_upload: bool = False,
        delete_on_replace: bool = False,
        url_mode: str = "direct",
        config: str = "default",
        **kwargs: Any,
    ) -> None:
        self.tier = parse_tier(tier) if tier is not None else None
        self.visibility = parse_visibility(visibility) if visibility is not None else None
        # Checked when the model is defined, so a bad duration never reaches an upload.
        self.hot_duration = parse_seconds(hot_duration, "hot_duration")
        self.upload_to = upload_to
        self.delete_with_owner = delete_with_owner
        self.direct_upload = direct_upload
        self.delete_on_replace = delete_on_replace
        self.url_mode = parse_url_mode(url_mode)
        if direct_upload and config != "default":
            # Direct uploads grant, finalise and rate-limit through one endpoint, for "default" only.
            raise InvalidOptionError(
                f"PhysicalFileField(direct_upload=True, config={config!r}): direct uploads go to the 'default' "
                "configuration only; upload through the form instead, or use config='default'."
            )
        self.config = config
        kwargs.setdefault("null", True)
        kwargs.setdefault("blank", True)
        kwargs.setdefault("related_name", "+")
        super().__init__(to, on_delete, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        for attr, default in (
            ("tier", None),
            ("visibility", None),
            ("hot_duration", None),
            ("upload_to", ""),
            ("delete_with_owner", False),
            ("direct_upload", False),
            ("delete_on_replace", False),
            ("url_mode", "direct"),
            ("config", "default"),
        ):
            value = getattr(self, attr)
            if value != default:
                kwargs[attr] = value.value if isinstance(value, StorageTier | FileVisibility) else value
        return name, path, args, kwargs

    def contribute_to_class(self, cls: type[models.Model], name: str, *args: Any, **kwargs: Any) -> None:
        super().contribute_to_class(cls, name, *args, **kwargs)
        if self.delete_with_owner and not cls._meta.abstract:
            post_delete.connect(self._delete_file, sender=cls, weak=False, dispatch_uid=f"s3strata-{cls._meta.label}-{name}")
        if self.delete_on_replace and not cls._meta.abstract:
            uid = f"s3strata-replace-{cls._meta.label}-{name}"
            post_init.connect(self._remember_saved, sender=cls, weak=False, dispatch_uid=uid)
            post_save.connect(self._delete_replaced, sender=cls, weak=False, dispatch_uid=uid)

    def _delete_file(self, sender: Any, instance: models.Model, using: str | None = None, **kwargs: Any) -> None:
        file_id = getattr(instance, self.attname)
        if file_id is not None:
            _delete_after_commit(file_id, using)

    def _remember_saved(self, sender: Any, instance: models.Model, **kwargs: Any) -> None:
        # A deferred column (``.only()``) is not known: a replace of it deletes nothing.
        if self.attname in instance.__dict__:
            instance.__dict__.setdefault(SAVED, {})[self.attname] = instance.__dict__[self.attname]

    def _delete_replaced(
        self, sender: Any, instance: models.Model, created: bool, raw: bool = False, using: str | None = None, **kwargs: Any
    ) -> None:
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and self.name not in update_fields and self.attname not in update_fields:
            return  # this column was not written
        saved = instance.__dict__.setdefault(SAVED, {})
        old = saved.get(self.attname)
        new = instance.__dict__.get(self.attname)
        saved[self.attname] = new
        if not created and not raw and old is not None and old != new:
            _delete_after_commit(old, using)

    # -- forms -----------------------------------------------------------------------

    def formfield(self, **kwargs: Any) -> Any:  # type: ignore[override]
        """Return a file upload field (not the foreign key's select box); with ``direct_upload``, one that sends to S3.

        The admin wraps a foreign key's widget in RelatedFieldWidgetWrapper; here it shows no links.
        Its "+" opens a popup whose new file RelatedObjectLookups.js cannot put into a file input (the
        popup stays open, the owner is saved with no file and the popup's row is left with no owner),
        and its change, delete and view links follow a <select>'s value.
        """
        widget = kwargs.get("widget")
        options: dict[str, Any] = {
            "required": kwargs.get("required", not self.blank),
            "label": kwargs.get("label", capfirst(self.verbose_name)),
            "help_text": kwargs.get("help_text", self.help_text),
        }
        if isinstance(widget, forms.FileInput) or (isinstance(widget, type) and issubclass(widget, forms.FileInput)):
            options["widget"] = widget
        base: type[forms.FileField] = forms.FileField
        if self.direct_upload:
            from .forms import DirectUploadField, DirectUploadWidget

            options.setdefault("widget", DirectUploadWidget(self.upload_policy()))
            base = DirectUploadField

        class UploadField(base):  # type: ignore[valid-type,misc]
            def __setattr__(self, name: str, value: Any) -> None:
                if name == "widget" and hasattr(value, "can_add_related"):  # the admin's RelatedFieldWidgetWrapper
                    value.can_add_related = value.can_change_related = False
                    value.can_delete_related = value.can_view_related = False
                super().__setattr__(name, value)

        return UploadField(**options)

    def upload_policy(self) -> Any:
        """Return the UploadPolicy of this field's direct uploads (a callable ``upload_to`` does not apply)."""
        from .uploads import UploadPolicy

        return UploadPolicy(
            tier=self.tier.value if self.tier else None,
            visibility=self.visibility.value if self.visibility else None,
            hot_duration=self.hot_duration,
            upload_to=self.upload_to if isinstance(self.upload_to, str) else "",
        )

    def value_from_object(self, obj: models.Model) -> Any:
        """Return the PhysicalFile itself: the file widget shows its name and URL."""
        return getattr(obj, self.name)

    def save_form_data(self, instance: models.Model, data: Any) -> None:
        """Keep an upload until the owning row is saved; False (the clear box) removes the link."""
        if data is False:
            setattr(instance, self.name, None)
        elif isinstance(data, UploadedFile) or (
            hasattr(data, "read") and hasattr(data, "name") and not isinstance(data, models.Model)
        ):
            self.hold(instance, data)
        elif isinstance(data, models.Model):
            setattr(instance, self.name, data)

    def validate(self, value: Any, model_instance: models.Model | None) -> None:
        """Accept an empty value while an upload waits for the owning row's save."""
        if value is None and model_instance is not None and self.name in model_instance.__dict__.get(PENDING, {}):
            return
        super().validate(value, model_instance)

    # -- saving ----------------------------------------------------------------------

    def generate_suffix(self, instance: models.Model, filename: str) -> tuple[str, str]:
        """Return (record filename, key suffix) for an upload, applying ``upload_to``."""
        if callable(self.upload_to):
            name = self.upload_to(instance, filename)
        else:
            name = posixpath.join(timezone.now().strftime(self.upload_to), filename) if self.upload_to else filename
        return unique_suffix(str(name))

    def hold(self, instance: models.Model, upload: Any) -> None:
        """Keep ``upload`` (a Django File) until ``instance`` is saved; until then the link is empty."""
        instance.__dict__.setdefault(PENDING, {})[self.name] = upload
        instance.__dict__[self.attname] = None
        if self.is_cached(instance):
            self.delete_cached_value(instance)

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        """Store a file held for this field (with the field's tier, visibility and hot_duration), then save its id."""
        pending = model_instance.__dict__.get(PENDING, {}).pop(self.name, None)
        if pending is not None:
            model_instance.__dict__[self.attname] = None
            setattr(model_instance, self.name, self.store(model_instance, pending))
        return super().pre_save(model_instance, add)

    def store(self, instance: models.Model, upload: Any) -> Any:
        """Upload ``upload`` (streamed) with this field's options and return its PhysicalFile."""
        from .services import store_upload

        filename, suffix = self.generate_suffix(instance, posixpath.basename(upload.name or "file"))
        return store_upload(upload, filename, suffix, self.tier, self.visibility, self.hot_duration, self.config)


def _delete_after_commit(file_id: Any, using: str | None) -> None:
    """Delete file ``file_id`` (row, then object, by the FileManager) once the owner's transaction commits.

    Nothing happens on a rollback, nor when another row (any ``ForeignKey`` to PhysicalFile, or a
    ``FileField`` on S3StrataStorage) still references the file by then: checked with the row
    locked, and a reference made meanwhile is never set to NULL (``delete_if_unreferenced``).
    """

    def delete() -> None:
        from .operations_unreferenced import delete_if_unreferenced

        if delete_if_unreferenced(file_id) == "kept":
            logger.info("s3strata: file %s is still referenced; not deleted with its owner's change", file_id)

    # robust: a failed delete is logged and leaves an unreferenced file (s3strata_unreferenced finds it).
    transaction.on_commit(delete, using=using, robust=True)
