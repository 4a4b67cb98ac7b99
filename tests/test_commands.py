"""The management commands: summaries, --json, --dry-run, and a non-zero exit when anything failed."""

from __future__ import annotations

import datetime
import io
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.core.management.base import OutputWrapper
from django.utils import timezone

from django_s3strata import get_file_manager
from django_s3strata.core import StorageTier, UploadOptions
from django_s3strata.models import PhysicalFile
from tests.conftest import Env

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_archive_command(s3strata_settings: Env) -> None:
    env = s3strata_settings
    sync = get_file_manager().sync
    files = [sync.upload(b"x", UploadOptions(hot_duration=0)) for _ in range(3)]
    assert "Would move 3 file(s)" in run("s3strata_archive", "--dry-run")
    result = json.loads(run("s3strata_archive", "--json", "--limit", "2", "--batch-size", "1", "--concurrency", "2"))
    assert (result["moved"], result["failed"]) == (2, 0) and len(env.keys("COLD")) == 2
    assert "Moved 1 file(s)" in run("s3strata_archive")
    assert env.keys("COLD") == sorted(f.path for f in files)


def test_archive_command_fails_loudly(s3strata_settings: Env) -> None:
    env = s3strata_settings
    f = get_file_manager().sync.upload(b"x", UploadOptions(hot_duration=0))
    env.hot_client.delete_object(Bucket=env.hot_bucket, Key=f.path)
    with pytest.raises(CommandError, match="1 failure"):
        run("s3strata_archive")


def test_orphans_command(s3strata_settings: Env) -> None:
    env = s3strata_settings
    env.put("HOT", "private/stray.bin", b"abc")
    assert "0 orphan(s)" in run("s3strata_orphans", "list")  # younger than the 24-hour grace period
    listing = run("s3strata_orphans", "list", "--older-than", "0")
    assert "private/stray.bin" in listing and "1 orphan(s), 3 bytes" in listing
    data = json.loads(run("s3strata_orphans", "delete", "--older-than", "0", "--dry-run", "--json"))
    assert (data["found"], data["deleted"], data["dry_run"]) == (1, 0, True)
    adopted = json.loads(run("s3strata_orphans", "adopt", "--older-than", "0", "--tier", "hot", "--json"))
    assert adopted["adopted"] == 1 and PhysicalFile.objects.get().path == "private/stray.bin"
    env.put("COLD", "public/x", b"x")
    assert json.loads(run("s3strata_orphans", "delete", "--older-than", "0", "--prefix", "public/", "--json"))["deleted"] == 1
    assert env.keys("COLD") == []


def test_verify_command(s3strata_settings: Env) -> None:
    env = s3strata_settings
    f = get_file_manager().sync.upload(b"x")
    assert "1 ok" in run("s3strata_verify")
    env.hot_client.delete_object(Bucket=env.hot_bucket, Key=f.path)
    with pytest.raises(CommandError):
        run("s3strata_verify")
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("s3strata_verify", "--json", stdout=out)
    assert json.loads(out.getvalue())["missing"][0]["id"] == f.pk


def test_cors_command_adds_its_rule_and_keeps_others(s3strata_settings: Env) -> None:
    env = s3strata_settings
    other = {"ID": "theirs", "AllowedMethods": ["GET"], "AllowedOrigins": ["https://cdn.example.com"]}
    env.hot_client.put_bucket_cors(Bucket=env.hot_bucket, CORSConfiguration={"CORSRules": [other]})
    out = run("s3strata_cors", "--origin", "https://app.example.com")
    assert "HOT: bucket" in out and "COLD: bucket" in out
    run("s3strata_cors", "--origin", "https://app.example.com", "--origin", "http://127.0.0.1:8000", "--tier", "HOT")
    rules = {r.get("ID"): r for r in env.hot_client.get_bucket_cors(Bucket=env.hot_bucket)["CORSRules"]}
    assert set(rules) == {"theirs", "S3StrataDirectUploads"}  # replaced, not repeated
    assert rules["S3StrataDirectUploads"]["AllowedOrigins"] == ["https://app.example.com", "http://127.0.0.1:8000"]
    assert set(rules["S3StrataDirectUploads"]["AllowedMethods"]) == {"POST", "PUT"}
    cold = env.cold_client.get_bucket_cors(Bucket=env.cold_bucket)["CORSRules"]
    assert [r["AllowedOrigins"] for r in cold] == [["https://app.example.com"]]
    with pytest.raises(CommandError, match="scheme://host"):
        run("s3strata_cors", "--origin", "app.example.com")


# -- s3strata_public_policy: the bucket policy that PUBLIC URLs need ---------------------------


def policy_of(env: Env, tier: str) -> dict[str, Any] | None:
    try:
        return dict(json.loads(env.client(tier).get_bucket_policy(Bucket=env.bucket(tier))["Policy"]))
    except env.client(tier).exceptions.ClientError:
        return None


def test_public_policy_dry_run_prints_each_policy_and_changes_nothing(s3strata_settings: Env) -> None:
    env = s3strata_settings
    for tier in ("HOT", "COLD"):
        env.client(tier).delete_bucket_policy(Bucket=env.bucket(tier))
    out = run("s3strata_public_policy", "--dry-run")
    assert f"HOT bucket '{env.hot_bucket}' would get this policy, replacing any it has:" in out
    assert f'"arn:aws:s3:::{env.cold_bucket}/public/*"' in out
    data = json.loads(run("s3strata_public_policy", "--dry-run", "--json", "--tier", "COLD"))
    assert list(data) == ["COLD"] and data["COLD"]["policy"]["Statement"][0]["Principal"] == "*"
    assert policy_of(env, "HOT") is None and policy_of(env, "COLD") is None


def test_public_policy_sets_and_refuses_to_replace_another_policy(s3strata_settings: Env) -> None:
    env = s3strata_settings
    for tier in ("HOT", "COLD"):
        env.client(tier).delete_bucket_policy(Bucket=env.bucket(tier))
    out = run("s3strata_public_policy", "--tier", "HOT")
    assert f"HOT bucket '{env.hot_bucket}': anyone may now read public/* (it had no policy)." in out
    assert policy_of(env, "COLD") is None
    ours = policy_of(env, "HOT")
    assert ours is not None and ours["Statement"][0]["Resource"] == f"arn:aws:s3:::{env.hot_bucket}/public/*"
    theirs = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{env.cold_bucket}/x/*"}
        ],
    }
    env.cold_client.put_bucket_policy(Bucket=env.cold_bucket, Policy=json.dumps(theirs))
    with pytest.raises(CommandError, match=r"replaces a bucket's whole policy\. Nothing was changed\. Rerun with --yes"):
        run("s3strata_public_policy")
    assert policy_of(env, "COLD") == theirs  # refused before writing anything
    out = run("s3strata_public_policy", "--yes")
    assert "HOT bucket" in out and "left unchanged" in out and "(replaced its previous policy)" in out
    assert policy_of(env, "HOT") == ours and policy_of(env, "COLD") != theirs
    assert "left unchanged" in run("s3strata_public_policy", "--tier", "COLD")


@pytest.mark.parametrize(("answer", "replaced"), [("y", True), ("", False)])
def test_public_policy_asks_on_a_terminal(
    s3strata_settings: Env, monkeypatch: pytest.MonkeyPatch, answer: str, replaced: bool
) -> None:
    env = s3strata_settings
    theirs = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject", "Resource": "*"}],
    }
    env.hot_client.put_bucket_policy(Bucket=env.hot_bucket, Policy=json.dumps(theirs))
    monkeypatch.setattr("sys.stdin", io.StringIO())
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    asked: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or answer)
    if replaced:
        assert "(replaced its previous policy)" in run("s3strata_public_policy", "--tier", "HOT")
    else:
        with pytest.raises(CommandError, match="Nothing was changed"):
            run("s3strata_public_policy", "--tier", "HOT")
    assert asked == ["Replace it? [y/N] "] and (policy_of(env, "HOT") != theirs) is replaced


@pytest.mark.parametrize("env", ["shared"], indirect=True)
def test_public_policy_names_both_prefixes_when_the_tiers_share_a_bucket(s3strata_settings: Env, settings: Any) -> None:
    env = s3strata_settings
    settings.S3STRATA = {
        **settings.S3STRATA,
        "COLD_BUCKET": env.hot_bucket,
        "PUBLIC_COLD_PREFIX": "cold-public",
        "PRIVATE_COLD_PREFIX": "cold-private",
    }
    env.hot_client.delete_bucket_policy(Bucket=env.hot_bucket)
    out = run("s3strata_public_policy", "--tier", "COLD")
    assert f"COLD bucket '{env.hot_bucket}': anyone may now read public/*, cold-public/* (it had no policy)." in out
    from django_s3strata.checks import check_public_read

    assert check_public_read() == []


@pytest.mark.seaweed
def test_public_policy_makes_public_urls_answer(seaweed_settings: Env) -> None:
    """SeaweedFS enforces bucket policies: a PUBLIC file's URL answers 403 until the command ran, then 200."""
    from django_s3strata.checks import check_public_read

    sync = get_file_manager().sync
    public = sync.upload(b"public bytes", UploadOptions(filename="p.txt", visibility="PUBLIC"))
    cold = sync.upload(b"cold bytes", UploadOptions(filename="c.txt", visibility="PUBLIC", tier="COLD"))
    private = sync.upload(b"private bytes", UploadOptions(filename="q.txt"))
    private_direct = get_file_manager().objectstore.public_url(StorageTier.HOT, private.path)
    assert anonymous_get(public.url)[0] == 403 and anonymous_get(cold.url)[0] == 403
    assert sorted(m.id for m in check_public_read()) == ["s3strata.W004", "s3strata.W004"]
    assert "it had no policy" in run("s3strata_public_policy")
    assert anonymous_get(public.url) == (200, b"public bytes") and anonymous_get(cold.url) == (200, b"cold bytes")
    assert anonymous_get(private_direct)[0] == 403  # the private prefix stays closed
    assert check_public_read() == []
    assert "left unchanged" in run("s3strata_public_policy")


def anonymous_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


# -- S3 unusable: a missing bucket, wrong keys, an endpoint that is down -------------------------

FAILURES = {
    # What the command's one line must name so that a person knows what to fix.
    "missing-bucket": "create it, or fix the",
    "wrong-keys": "access_key and secret_key",
    "endpoint-down": "check that it is running",
}
COMMANDS = {
    "s3strata_archive": [],
    "s3strata_cors": ["--origin", "https://app.example.com"],
    "s3strata_orphans": ["list"],
    "s3strata_public_policy": [],
    "s3strata_verify": [],
}


def run_cli(name: str, *args: str) -> tuple[int, str, str]:
    """Run a command as ``manage.py`` does (CommandError printed, then sys.exit); return (status, stdout, stderr)."""
    from django.core.management import load_command_class

    out, err = io.StringIO(), io.StringIO()
    command = load_command_class("django_s3strata", name)
    command.stdout, command.stderr = OutputWrapper(out), OutputWrapper(err)
    try:
        command.run_from_argv(["manage.py", name, "--skip-checks", *args])
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture
def broken_s3(request: pytest.FixtureRequest, s3strata_settings: Env, settings: Any) -> Iterator[str]:
    """settings.S3STRATA pointing at S3 that cannot serve: ``request.param`` says how."""
    value = {**settings.S3STRATA, "ADVANCED": {"MAX_ATTEMPTS": 1, "CONNECT_TIMEOUT": 2, "READ_TIMEOUT": 5}}
    past = timezone.now() - datetime.timedelta(hours=1)
    # One expired row, so that archive and verify have something to ask S3 about.
    PhysicalFile.objects.create(filename="a.txt", path="private/a.txt", storage_tier="HOT", hot_until=past)
    if request.param == "missing-bucket":
        value.update(HOT_BUCKET="no-such-bucket-hot", COLD_BUCKET="no-such-bucket-cold")
        settings.S3STRATA = value
        yield request.param
    elif request.param == "wrong-keys":
        from moto.core import enable_iam_authentication

        value.update(ACCESS_KEY="AKIAWRONGWRONGWRONG1", SECRET_KEY="wrong-secret")
        settings.S3STRATA = value
        with enable_iam_authentication():  # moto checks signatures only when asked
            yield request.param
    else:
        with socket.socket() as sock:  # a port nothing listens on once closed
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        value.update(PORT=port)
        settings.S3STRATA = value
        yield request.param


@pytest.mark.parametrize("env", ["shared"], indirect=True)
@pytest.mark.parametrize("broken_s3", list(FAILURES), indirect=True)
@pytest.mark.parametrize("name", list(COMMANDS))
def test_commands_end_an_s3_failure_with_one_line(broken_s3: str, name: str) -> None:
    status, out, err = run_cli(name, *COMMANDS[name])
    assert status == 1, (out, err)
    assert "Traceback" not in err and err.count("\n") <= 1, err
    assert err.startswith("CommandError: ") and FAILURES[broken_s3] in err, err
