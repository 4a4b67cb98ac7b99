"""The Django faces end to end: upload, URL, archive, visibility, delete, checking buckets and rows each step."""

from __future__ import annotations

import unicodedata
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.forms import modelform_factory
from django.template import Context, Template

from django_s3strata import get_file_manager, signals
from django_s3strata.core import InvalidOptionError, StorageTier
from django_s3strata.fields import PhysicalFileField
from django_s3strata.models import PhysicalFile
from django_s3strata.storage import S3StrataStorage, prefetch_files
from tests.conftest import Env
from tests.testapp.models import Contract, Document, Report

pytestmark = pytest.mark.django_db


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        data: bytes = resp.read()
        return data


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def s3_requests(s3strata_settings: Env) -> Iterator[list[str]]:
    """Count the S3 requests the library's clients send."""
    seen: list[str] = []
    store = get_file_manager().objectstore
    clients = {id(store.client(t)): store.client(t) for t in StorageTier}
    for client in clients.values():
        client.meta.events.register("before-send.s3", lambda request, **kw: seen.append(request.method))
    yield seen


def test_physical_file_field_full_lifecycle(s3strata_settings: Env, django_capture_on_commit_callbacks: Any) -> None:
    env = s3strata_settings
    events: list[tuple[str, dict[str, Any]]] = []

    def listen(name: str) -> Any:
        def receiver(sender: Any, file: PhysicalFile, **kw: Any) -> None:
            events.append((name, {k: v for k, v in kw.items() if k != "signal"}))

        return receiver

    receivers = {n: listen(n) for n in ("uploaded", "tier", "archived", "visibility", "deleted")}
    signals.file_uploaded.connect(receivers["uploaded"])
    signals.file_tier_changed.connect(receivers["tier"])
    signals.file_archived.connect(receivers["archived"])
    signals.file_visibility_changed.connect(receivers["visibility"])
    signals.file_deleted.connect(receivers["deleted"])
    try:
        # Upload through a ModelForm, as a view or the admin would.
        Form = modelform_factory(Document, fields=["title", "attachment"])
        form = Form(
            data={"title": "Q3"}, files={"attachment": SimpleUploadedFile("q3 report.pdf", b"%PDF q3", "application/pdf")}
        )
        assert form.is_valid(), form.errors
        assert PhysicalFile.objects.count() == 0  # nothing stored before the owning row is saved
        with django_capture_on_commit_callbacks(execute=True):
            doc = form.save()
        record = PhysicalFile.objects.get()
        assert doc.attachment == record and record.filename == "q3 report.pdf"
        assert record.path.startswith("private/docs/") and record.path.endswith("-q3 report.pdf")
        assert (record.size, record.content_type, record.storage_tier) == (7, "application/pdf", "HOT")
        assert record.hot_until is not None  # the field's hot_duration
        assert env.read("HOT", record.path) == b"%PDF q3"
        assert fetch(Document.objects.select_related("attachment").get().attachment.url) == b"%PDF q3"

        # Archive, then the URL still downloads from COLD.
        with django_capture_on_commit_callbacks(execute=True):
            record.set_hot_duration(0)
            record.refresh_from_db()
            record.archive()
        record.refresh_from_db()
        assert record.storage_tier == "COLD" and record.hot_until is None
        assert env.keys("HOT") == [] and env.keys("COLD") == [record.path]
        assert fetch(record.url) == b"%PDF q3"

        # Make it public: a direct URL, no signature.
        with django_capture_on_commit_callbacks(execute=True):
            record.set_visibility("PUBLIC")
        record.refresh_from_db()
        assert record.visibility == "PUBLIC" and record.path.startswith("public/docs/")
        assert "X-Amz" not in record.url and fetch(record.url) == b"%PDF q3"
        assert env.keys("COLD") == [record.path]

        # Delete through the model: row first, then object.
        with django_capture_on_commit_callbacks(execute=True):
            record.delete()
        assert PhysicalFile.objects.count() == 0 and env.keys("COLD") == []
        doc.refresh_from_db()
        assert doc.attachment is None  # SET_NULL
    finally:
        for name, receiver in receivers.items():
            {
                "uploaded": signals.file_uploaded,
                "tier": signals.file_tier_changed,
                "archived": signals.file_archived,
                "visibility": signals.file_visibility_changed,
                "deleted": signals.file_deleted,
            }[name].disconnect(receiver)
    assert [name for name, _ in events] == ["uploaded", "tier", "archived", "visibility", "deleted"]
    assert events[1][1] == {"old_tier": "HOT", "new_tier": "COLD"}
    assert events[3][1] == {"old_visibility": "PRIVATE", "new_visibility": "PUBLIC"}


def test_filefield_on_the_backend_keeps_its_name_across_moves(s3strata_settings: Env) -> None:
    env = s3strata_settings
    report = Report.objects.create(name="r", pdf=ContentFile(b"%PDF r", name="annual.pdf"))
    name = report.pdf.name
    assert name.startswith("reports/") and name.endswith("-annual.pdf")
    record = PhysicalFile.objects.get()
    assert record.path == f"public/{name}" and env.read("HOT", record.path) == b"%PDF r"
    assert fetch(report.pdf.url) == b"%PDF r"
    record.archive()
    record.set_visibility("PRIVATE")
    report = Report.objects.get()
    assert report.pdf.name == name  # the stored name did not change
    assert env.keys("COLD") == [f"private/{name}"]
    assert "X-Amz-Signature" in report.pdf.url and fetch(report.pdf.url) == b"%PDF r"
    with report.pdf.open("rb") as fh:
        assert fh.read() == b"%PDF r"
    assert report.pdf.size == 6
    report.pdf.delete(save=False)
    assert env.keys("COLD") == [] and PhysicalFile.objects.count() == 0


def test_default_storage_is_s3strata(s3strata_settings: Env) -> None:
    env = s3strata_settings
    name = default_storage.save("notes/hello.txt", ContentFile(b"hello"))
    assert name.startswith("notes/") and name.endswith("-hello.txt")
    assert default_storage.exists(name) and not default_storage.exists("notes/other.txt")
    assert env.read("HOT", f"private/{name}") == b"hello"
    assert default_storage.listdir("notes") == ([], [name.split("/", 1)[1]])
    assert default_storage.listdir("") == (["notes"], [])
    assert default_storage.size(name) == 5
    assert default_storage.get_modified_time(name).tzinfo is not None
    assert default_storage.get_created_time(name) <= default_storage.get_modified_time(name)
    with default_storage.open(name) as fh:
        assert fh.read() == b"hello"
    with pytest.raises(ValueError, match="reading only"):
        default_storage.open(name, "wb")
    default_storage.delete(name)
    default_storage.delete(name)  # a missing name is not an error
    assert not default_storage.exists(name) and env.keys("HOT") == []
    with pytest.raises(FileNotFoundError):
        default_storage.open(name)


@pytest.mark.parametrize("env", ["shared"], indirect=True)
def test_a_decomposed_name_finds_the_file_it_saved(s3strata_settings: Env) -> None:
    """macOS sends "é" as "e" + U+0301 (NFD); the file is stored under NFC and found under either form."""
    env = s3strata_settings
    nfd, nfc = "d\u0065\u0301cembre/re\u0301sume\u0301.txt", "d\u00e9cembre/r\u00e9sum\u00e9.txt"
    name = default_storage.save(nfd, ContentFile(b"cv"))
    assert (
        name == unicodedata.normalize("NFC", name)
        and name.startswith("d\u00e9cembre/")
        and name.endswith("-r\u00e9sum\u00e9.txt")
    )
    record = PhysicalFile.objects.get()
    assert record.path == f"private/{name}" and record.filename == "r\u00e9sum\u00e9.txt"
    assert env.keys("HOT") == [record.path]
    decomposed = unicodedata.normalize("NFD", name)
    for given in (name, decomposed):
        assert default_storage.exists(given)
        assert default_storage.size(given) == 2
        assert "X-Amz-Signature" in default_storage.url(given) and fetch(default_storage.url(given)) == b"cv"
        with default_storage.open(given) as fh:
            assert fh.read() == b"cv"
        assert default_storage.get_modified_time(given) is not None
    assert default_storage.listdir(unicodedata.normalize("NFD", "d\u00e9cembre")) == ([], [name.split("/", 1)[1]])
    assert default_storage.get_available_name(nfd) == nfc
    report = Report(name="r", pdf=decomposed)
    prefetch_files([report], "pdf")
    assert fetch(report.pdf.url) == b"cv"
    default_storage.delete(decomposed)
    assert not default_storage.exists(name) and env.keys("HOT") == [] and not PhysicalFile.objects.exists()


@pytest.mark.parametrize(
    "options",
    [
        {"hot_duration": 10**20},
        {"hot_duration": -1},
        {"hot_duration": "60"},
        {"expires_in": 0},
        {"expires_in": 8 * 86400},
        {"tier": "WARM"},
    ],
)
def test_storage_refuses_bad_options_when_built(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidOptionError):
        S3StrataStorage(**options)


def test_field_refuses_a_bad_hot_duration_when_defined() -> None:
    with pytest.raises(InvalidOptionError, match="100 years"):
        PhysicalFileField(hot_duration=10**20)
    assert PhysicalFileField(hot_duration=100 * 365 * 86400).hot_duration == 100 * 365 * 86400


def test_long_names_fit_the_field(s3strata_settings: Env) -> None:
    report = Report(name="long")
    report.pdf.save("x" * 300 + ".pdf", ContentFile(b"x"), save=True)
    assert len(report.pdf.name) <= 255 and report.pdf.name.endswith(".pdf")
    assert fetch(report.pdf.url) == b"x"


def test_storage_deconstructs_for_migrations() -> None:
    path, args, kwargs = S3StrataStorage(tier="COLD", visibility="PUBLIC", hot_duration=5).deconstruct()
    assert path == "django_s3strata.storage.S3StrataStorage"
    assert args == () and kwargs == {"tier": "COLD", "visibility": "PUBLIC", "hot_duration": 5}


def test_hundred_urls_cost_constant_queries_and_no_s3_request(
    s3strata_settings: Env, s3_requests: list[str], django_assert_num_queries: Any
) -> None:
    for i in range(100):
        Report.objects.create(name=f"r{i}", pdf=ContentFile(b"x", name=f"{i}.pdf"))
        Document.objects.create(title=f"d{i}", attachment=get_file_manager().sync.upload(b"d", None))
    s3_requests.clear()
    page = Template("{% for r in reports %}<a href='{{ r.pdf.url }}'>{{ r.name }}</a>{% endfor %}")
    with django_assert_num_queries(2):  # the reports, then their files in one query
        reports = list(Report.objects.all())
        prefetch_files(reports, "pdf")
        html = page.render(Context({"reports": reports}))
    assert html.count("<a href='http://127.0.0.1") == 100
    docs_page = Template("{% for d in docs %}<a href='{{ d.attachment.url }}'>{{ d.title }}</a>{% endfor %}")
    with django_assert_num_queries(1):  # one join
        html = docs_page.render(Context({"docs": Document.objects.select_related("attachment")}))
    assert html.count("X-Amz-Signature") == 100
    assert s3_requests == []


def test_a_page_of_plain_file_fields_looks_its_files_up_in_one_query(
    s3strata_settings: Env, s3_requests: list[str], django_assert_num_queries: Any
) -> None:
    from django_s3strata.storage import clear_cache

    for i in range(100):
        Report.objects.create(name=f"r{i}", pdf=ContentFile(b"x", name=f"{i}.pdf"))
    clear_cache()
    s3_requests.clear()
    page = Template("{% for r in reports %}<a href='{{ r.pdf.url }}'>{{ r.name }}</a>{% endfor %}")
    with django_assert_num_queries(2):  # the reports, then their files in one query: no prefetch_files call
        html = page.render(Context({"reports": Report.objects.all()}))
    assert html.count("<a href='http://127.0.0.1") == 100
    assert all(
        f"/{r.pdf.name.rsplit('/', 1)[-1]}'" in html or r.pdf.name.rsplit("/", 1)[-1] in html for r in Report.objects.all()
    )
    assert s3_requests == []


def test_a_hundred_view_links_cost_constant_queries_and_no_s3_request(
    s3strata_settings: Env, s3_requests: list[str], django_assert_max_num_queries: Any
) -> None:
    from tests.testapp.models import Profile

    for i in range(100):
        Profile.objects.create(
            name=f"p{i}", photo=get_file_manager().sync.upload(b"p", None), cv=ContentFile(b"cv", name=f"{i}.pdf")
        )
    s3_requests.clear()
    page = Template(
        "{% for p in profiles %}<a href='{{ p.photo.url }}'>{{ p.name }}</a><a href='{{ p.cv.url }}'>cv</a>{% endfor %}"
    )
    with django_assert_max_num_queries(3):  # the profiles with their photos (one join), then the CVs' files in one query
        html = page.render(Context({"profiles": Profile.objects.select_related("photo")}))
    assert html.count("<a href='/s3strata/files/t/") == 100  # the CVs' storage: url_mode="signed"
    assert html.count("<a href='/s3strata/files/") == 200 and "X-Amz-Signature" not in html  # view links, no presigning
    assert s3_requests == []


def test_contract_file_is_deleted_with_its_owner(s3strata_settings: Env, django_capture_on_commit_callbacks: Any) -> None:
    env = s3strata_settings
    form = modelform_factory(Contract, fields=["customer", "scan"])(
        data={"customer": "acme"}, files={"scan": SimpleUploadedFile("scan.png", b"\x89PNG", "image/png")}
    )
    assert form.is_valid(), form.errors
    contract = form.save()
    assert contract.scan.storage_tier == "COLD" and contract.scan.path.startswith("private/contracts/acme/")
    assert env.keys("COLD") == [contract.scan.path]
    empty = modelform_factory(Contract, fields=["customer", "scan"])(data={"customer": "x"})
    assert not empty.is_valid() and "scan" in empty.errors  # blank=False: an upload is required
    with django_capture_on_commit_callbacks(execute=True):
        contract.delete()
    assert PhysicalFile.objects.count() == 0 and env.keys("COLD") == []


def test_queryset_filters_and_bulk_delete(s3strata_settings: Env) -> None:
    env = s3strata_settings
    sync = get_file_manager().sync
    from django_s3strata.core import UploadOptions

    expired = sync.upload(b"e", UploadOptions(hot_duration=0))
    public = sync.upload(b"p", UploadOptions(visibility="PUBLIC", hot_duration=3600))
    cold = sync.upload(b"c", UploadOptions(tier="COLD"))
    qs = PhysicalFile.objects
    assert set(qs.hot().values_list("pk", flat=True)) == {expired.pk, public.pk}
    assert list(qs.cold().values_list("pk", flat=True)) == [cold.pk]
    assert list(qs.public().values_list("pk", flat=True)) == [public.pk]
    assert set(qs.private().values_list("pk", flat=True)) == {expired.pk, cold.pk}
    assert list(qs.expired().values_list("pk", flat=True)) == [expired.pk]
    assert list(qs.expiring_within(7200).values_list("pk", flat=True)) == [public.pk]
    assert qs.get(pk=expired.pk).is_expired and qs.get(pk=expired.pk).exists_in_storage()
    deleted, failed = qs.hot().delete_with_objects()
    assert (deleted, failed) == (2, [])
    assert env.keys("HOT") == [] and list(qs.values_list("pk", flat=True)) == [cold.pk]
    with qs.get().open() as fh:
        assert fh.read() == b"c"


def test_admin_add_form_uploads_through_the_field(s3strata_settings: Env, admin_client: Any) -> None:
    env = s3strata_settings
    page = admin_client.get("/admin/testapp/document/add/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'enctype="multipart/form-data"' in html and 'type="file" name="attachment"' in html
    upload = SimpleUploadedFile("admin.txt", b"from the admin", "text/plain")
    response = admin_client.post("/admin/testapp/document/add/", {"title": "via admin", "attachment": upload})
    assert response.status_code == 302, response.content.decode()[:2000]
    doc = Document.objects.select_related("attachment").get(title="via admin")
    assert env.read("HOT", doc.attachment.path) == b"from the admin"
    change = admin_client.get(f"/admin/testapp/document/{doc.pk}/change/").content.decode()
    assert "admin.txt" in change  # the current file is shown with its link
