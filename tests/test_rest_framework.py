"""The Django REST framework field: renders a file's link and facts, accepts uploads and direct-upload refs per its policy."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from django_s3strata import get_file_manager
from django_s3strata.core import UploadOptions
from django_s3strata.models import PhysicalFile
from django_s3strata.uploads import make_ref
from tests.conftest import Env
from tests.testapp.models import Clip, Profile

serializers = pytest.importorskip("rest_framework.serializers")
from rest_framework.test import APIRequestFactory, force_authenticate  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from django_s3strata.contrib.rest_framework import PhysicalFileSerializerField  # noqa: E402

pytestmark = pytest.mark.django_db


class ProfileSerializer(serializers.ModelSerializer):  # type: ignore[misc]
    photo = PhysicalFileSerializerField(required=False, allow_null=True)

    class Meta:
        model = Profile
        fields = ["id", "name", "photo"]


class DirectProfileSerializer(ProfileSerializer):
    photo = PhysicalFileSerializerField(url_mode="direct")


class ClipSerializer(serializers.ModelSerializer):  # type: ignore[misc]
    video = PhysicalFileSerializerField()

    class Meta:
        model = Clip
        fields = ["id", "title", "video"]


def create_view(serializer_class: Any) -> Any:
    class Create(APIView):  # type: ignore[misc]
        authentication_classes: list[Any] = []
        permission_classes: list[Any] = []

        def post(self, request: Any) -> Any:
            from rest_framework.response import Response

            serializer = serializer_class(data=request.data, context={"request": request})
            serializer.is_valid(raise_exception=True)
            serializer.save()
            return Response(serializer.data, status=201)

    return Create.as_view()


def post(serializer_class: Any, data: dict[str, Any], user: User | None = None) -> Any:
    request = APIRequestFactory().post("/api/", data, format="multipart")
    if user is not None:
        force_authenticate(request, user=user)
    response = create_view(serializer_class)(request)
    response.render()
    return response


def test_a_multipart_upload_is_stored_by_the_model_field(s3strata_settings: Env) -> None:
    env = s3strata_settings
    response = post(ProfileSerializer, {"name": "ada", "photo": SimpleUploadedFile("ada.png", b"\x89PNG ada", "image/png")})
    assert response.status_code == 201, response.data
    record = PhysicalFile.objects.get()
    assert record.path.startswith("private/photos/") and env.read("HOT", record.path) == b"\x89PNG ada"
    assert response.data["photo"] == {
        "id": record.pk,
        "url": f"http://testserver/s3strata/files/{record.pk}/",  # the model field's url_mode="view", absolute
        "name": "ada.png",
        "size": 8,
        "content_type": "image/png",
        "tier": "HOT",
        "visibility": "PRIVATE",
        "restore_status": "READABLE",
    }


def test_uploads_are_held_to_the_policy(s3strata_settings: Env, settings: Any) -> None:
    settings.S3STRATA = {**settings.S3STRATA, "DIRECT_UPLOAD_CONTENT_TYPES": ["image/*"], "DIRECT_UPLOAD_MAX_SIZE": 10}
    text = post(ProfileSerializer, {"name": "a", "photo": SimpleUploadedFile("a.txt", b"text", "text/plain")})
    assert text.status_code == 400 and "not accepted here" in str(text.data["photo"][0])
    big = post(ProfileSerializer, {"name": "b", "photo": SimpleUploadedFile("b.png", b"\x89PNG" + b"x" * 20, "image/png")})
    assert big.status_code == 400 and big.data["photo"][0].code == "too_large"
    assert not PhysicalFile.objects.exists()


def test_a_direct_upload_ref_is_accepted_only_from_its_uploader_and_field(s3strata_settings: Env) -> None:
    owner, other = User.objects.create_user("owner"), User.objects.create_user("other")
    record = get_file_manager().sync.upload(b"clip", UploadOptions(filename="clip.mp4"))
    policy = Clip._meta.get_field("video").upload_policy()
    ref = make_ref(record, owner=f"user:{owner.pk}", policy=policy)
    assert post(ClipSerializer, {"title": "t", "video": ref}, other).status_code == 400
    wrong_field = make_ref(record, owner=f"user:{owner.pk}", policy=Profile._meta.get_field("photo").upload_policy())
    refused = post(ClipSerializer, {"title": "t", "video": wrong_field}, owner)
    assert refused.status_code == 400 and "another field" in str(refused.data["video"][0])
    assert post(ClipSerializer, {"title": "t", "video": "forged"}, owner).status_code == 400
    response = post(ClipSerializer, {"title": "t", "video": ref}, owner)
    assert response.status_code == 201, response.data
    assert Clip.objects.get().video_id == record.pk and response.data["video"]["url"].startswith("http://127.0.0.1")


def test_a_hundred_rows_render_without_queries_or_s3_requests(s3strata_settings: Env, django_assert_num_queries: Any) -> None:
    files = [get_file_manager().sync.upload(b"p", UploadOptions(filename=f"{i}.png")) for i in range(100)]
    Profile.objects.bulk_create(Profile(name=str(i), photo=f) for i, f in enumerate(files))
    with django_assert_num_queries(1):  # one join
        rows = ProfileSerializer(Profile.objects.select_related("photo"), many=True).data
    assert len({row["photo"]["url"] for row in rows}) == 100
    assert all(row["photo"]["url"].startswith("/s3strata/files/") for row in rows)  # no request: a path
    direct = DirectProfileSerializer(Profile.objects.select_related("photo")[:1], many=True).data
    assert "X-Amz-Signature" in direct[0]["photo"]["url"]


def test_an_archived_file_renders_no_url_and_its_restore_status(s3strata_settings: Env) -> None:
    """A list with a file in the deep archive (docs/archive.md) renders, with ``url: null`` for that one."""
    archived = get_file_manager().sync.upload(b"old", UploadOptions(tier="COLD", filename="old.png"))
    readable = get_file_manager().sync.upload(b"new", UploadOptions(filename="new.png"))
    # What verify's repair or a restore records: the object is archived and not restored.
    PhysicalFile.objects.filter(pk=archived.pk).update(archive_state="ARCHIVED")
    Profile.objects.create(name="old", photo=archived)
    Profile.objects.create(name="new", photo=readable)
    for serializer in (ProfileSerializer, DirectProfileSerializer):  # the download view's link, the object's own URL
        rows = {row["name"]: row["photo"] for row in serializer(Profile.objects.select_related("photo"), many=True).data}
        assert (rows["old"]["url"], rows["old"]["restore_status"], rows["old"]["tier"]) == (None, "ARCHIVED", "COLD")
        assert rows["new"]["url"] and rows["new"]["restore_status"] == "READABLE"
    PhysicalFile.objects.filter(pk=archived.pk).update(archive_state="RESTORING")
    row = DirectProfileSerializer(Profile.objects.get(name="old")).data["photo"]
    assert (row["url"], row["restore_status"]) == (None, "RESTORING")
    PhysicalFile.objects.filter(pk=archived.pk).update(archive_state="RESTORED")  # readable again: a URL
    row = DirectProfileSerializer(Profile.objects.get(name="old")).data["photo"]
    assert "X-Amz-Signature" in row["url"] and row["restore_status"] == "RESTORED"
