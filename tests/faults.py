"""A fault-injecting HTTP proxy on 127.0.0.1 in front of an S3 server: 500, 503 SlowDown, stalls and resets on cue,
and providers' missing operations (``Faults.emulate``: R2, B2, GCS)."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import re
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

#: What a rule can do to the request it matches.
#: "500" and "slowdown" answer in the server's place (the request never reaches it); "403" answers
#: AccessDenied; "reset" drops the connection with a TCP RST before forwarding; "stall" forwards the
#: request (so the server acts on it) and then withholds the answer past the client's read timeout.
FAULTS = ("500", "slowdown", "stall", "reset")
#: When a race's other writer runs: before the request reaches the server, or after it acted and before the answer.
RACES = ("before", "after")
_ANSWERS = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "403": (403, "AccessDenied", "Access Denied"),
    "badkey": (403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."),
    # What S3 answers a CopyObject of an object above 5 GiB (a test cannot afford the object itself).
    "toolarge": (
        400,
        "InvalidRequest",
        "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120",
    ),
}
#: GET on a bucket with one of these subresources reads a bucket setting, not the listing.
_BUCKET_GETS = {
    "policy": "GetBucketPolicy",
    "versioning": "GetBucketVersioning",
    "lifecycle": "GetBucketLifecycleConfiguration",
    "cors": "GetBucketCors",
}
_NOT_IMPLEMENTED = (501, "NotImplemented", "A header or query you provided requested a function that is not implemented.")


@dataclass(frozen=True)
class Provider:
    """An S3 provider's gaps as the proxy emulates them (docs/providers.md): the operations it answers
    501 NotImplemented, and its answer to an upload carrying botocore's optional checksum headers."""

    name: str
    unsupported: frozenset[str]
    #: (status, code, message) for a PutObject or UploadPart with x-amz-checksum-* or x-amz-sdk-checksum-algorithm.
    refuses_checksums: tuple[int, str, str] | None = None


#: The gaps of providers we cannot run here, from their public documentation and reported errors.
PROVIDERS = {
    # Cloudflare R2: no POST Object (browser form uploads), no bucket policies; until 2025 it answered
    # botocore >= 1.36's CRC32 headers with "NotImplemented: Header 'x-amz-checksum-crc32' ... not implemented".
    "r2": Provider(
        "r2",
        frozenset({"PostObject", "GetBucketPolicy", "PutBucketPolicy"}),
        (501, "NotImplemented", "Header 'x-amz-checksum-crc32' with value 'AAAAAA==' not implemented"),
    ),
    # Backblaze B2: no POST Object, no bucket policies; it refused "x-amz-sdk-checksum-algorithm".
    "b2": Provider(
        "b2",
        frozenset({"PostObject", "GetBucketPolicy", "PutBucketPolicy"}),
        (400, "InvalidArgument", "Unsupported header 'x-amz-sdk-checksum-algorithm' received for this API call."),
    ),
    # Google Cloud Storage's XML API: no multi-object delete ("POST ?delete is not implemented for objects").
    "gcs": Provider("gcs", frozenset({"DeleteObjects", "GetBucketPolicy", "PutBucketPolicy"})),
}
_CHECKSUM_HEADERS = ("x-amz-checksum-", "x-amz-sdk-checksum-algorithm", "x-amz-trailer")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "te", "upgrade"}


def classify(method: str, target: str, headers: Any) -> str:
    """Return the S3 operation a path-style request stands for (``PUT`` with a copy source is CopyObject, ...)."""
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    has_key = "/" in parts.path.lstrip("/")
    if method == "PUT":
        if not has_key:
            return "PutBucketPolicy" if "policy" in query else "CreateBucket"
        if "partNumber" in query:
            return "UploadPartCopy" if headers.get("x-amz-copy-source") else "UploadPart"
        return "CopyObject" if headers.get("x-amz-copy-source") else "PutObject"
    if method == "POST":
        if "restore" in query:
            return "RestoreObject"
        if "delete" in query:
            return "DeleteObjects"
        if "uploads" in query:
            return "CreateMultipartUpload"
        return "CompleteMultipartUpload" if "uploadId" in query else "PostObject"
    if method == "GET":
        if "uploads" in query:
            return "ListMultipartUploads"
        if not has_key:
            for name, op in _BUCKET_GETS.items():
                if name in query:
                    return op
            return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
        return "ListParts" if "uploadId" in query else "GetObject"
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    if method == "DELETE":
        if not has_key:
            return "DeleteBucket"
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    return method


@dataclass
class Seen:
    """One request the proxy saw: its operation, key, and what it did (``"ok"`` or the fault)."""

    op: str
    method: str
    path: str
    outcome: str
    status: int | None


@dataclass
class _Rule:
    op: str
    nth: int
    fault: str
    times: int
    fired: int = 0


class Faults:
    """The rules and the request log, shared by every proxy of one test (so counts span both endpoints)."""

    #: Answer like a bucket with default SSE-KMS (``Faults.kms = KmsBucket()``): see KmsBucket.
    kms: KmsBucket | None = None
    #: Keep restores of archived objects "ongoing" for a while (``Faults.restores = SlowRestores()``).
    restores: SlowRestores | None = None

    def __init__(self, stall_seconds: float = 1.0) -> None:
        self.stall_seconds = stall_seconds
        self.log: list[Seen] = []
        self._rules: list[_Rule] = []
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        #: A race: another writer run at the ``nth`` request of ``op``, before it is forwarded or before it is answered.
        self._race: tuple[str, int, str, Callable[[], None]] | None = None
        #: The provider whose gaps are emulated (None: the server's own behaviour).
        self.provider: Provider | None = None

    def emulate(self, provider: str | Provider | None) -> None:
        """Answer like ``provider`` (a name in PROVIDERS, or a Provider): NotImplemented for its missing operations."""
        self.provider = PROVIDERS[provider] if isinstance(provider, str) else provider

    def emulated_answer(self, op: str, headers: Any) -> tuple[int, str, str] | None:
        """Return the (status, code, message) the emulated provider answers a request of ``op`` with, if it refuses it."""
        provider = self.provider
        if provider is None:
            return None
        if op in provider.unsupported:
            return _NOT_IMPLEMENTED
        carries_checksum = any(name.lower().startswith(_CHECKSUM_HEADERS) for name in headers)
        if provider.refuses_checksums and op in ("PutObject", "UploadPart") and carries_checksum:
            return provider.refuses_checksums
        return None

    def race(self, op: str, nth: int, when: str, writer: Callable[[], None]) -> None:
        """Run ``writer`` at the ``nth`` request of ``op``: ``when`` "before" it reaches the server, or "after"
        the server acted on it and before its answer is sent (after the withholding, for a stalled one)."""
        if when not in RACES:
            raise ValueError(f"unknown race moment {when!r}")
        with self._lock:
            self._race = (op, nth, when, writer)

    def race_due(self, op: str) -> tuple[str, Callable[[], None]] | None:
        """Return (when, writer) if a race is set on the request of ``op`` just counted by ``decide``."""
        with self._lock:
            if self._race is None or self._race[0] != op or self._race[1] != self._counts.get(op):
                return None
            _, _, when, writer = self._race
            self._race = None
            return when, writer

    def fail(self, op: str, nth: int = 1, fault: str = "500", times: int = 1) -> None:
        """Answer the ``nth`` request of ``op`` (counted since ``reset``) and the ``times - 1`` after it with ``fault``."""
        if fault not in FAULTS and fault not in _ANSWERS:
            raise ValueError(f"unknown fault {fault!r}")
        with self._lock:
            self._rules.append(_Rule(op, nth, fault, times))

    def reset(self) -> None:
        """Forget the rules, the counts, the log and the emulated provider."""
        with self._lock:
            self._rules.clear()
            self._counts.clear()
            self.log.clear()
            self._race = None
            self.provider = None

    def ops(self) -> list[str]:
        """Return the operations seen since the last reset, in order."""
        with self._lock:
            return [s.op for s in self.log]

    def count(self, op: str) -> int:
        """Return how many requests of ``op`` were seen since the last reset."""
        return self.ops().count(op)

    def decide(self, op: str) -> str | None:
        """Count a request of ``op`` and return the fault to inject, if a rule matches it."""
        with self._lock:
            n = self._counts[op] = self._counts.get(op, 0) + 1
            for rule in self._rules:
                if rule.op == op and rule.nth <= n and rule.fired < rule.times:
                    rule.fired += 1
                    return rule.fault
        return None

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.log.append(seen)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as boto3 expects
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the log is Faults.log
        return None

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        body = self._body()
        op = classify(self.command, self.path, self.headers)
        faults = self.server.faults
        emulated = faults.emulated_answer(op, self.headers)
        if emulated is not None:
            faults.decide(op)  # counted like any other request
            faults.record(Seen(op, self.command, urlsplit(self.path).path, "emulated", emulated[0]))
            self._answer_error(*emulated)
            return
        fault = faults.decide(op)
        race = faults.race_due(op)
        seen = Seen(op, self.command, urlsplit(self.path).path, fault or (f"race-{race[0]}" if race else "ok"), None)
        faults.record(seen)
        if race and race[0] == "before":
            race[1]()
        if fault == "reset":
            self._reset()
            return
        if fault in _ANSWERS:
            seen.status, code, message = _ANSWERS[fault]
            self._answer_error(seen.status, code, message)
            return
        slow = faults.restores.refusal(op, self.path, self.headers) if faults.restores is not None else None
        if slow is not None:
            seen.status = slow[0]
            self._answer_error(*slow)
            return
        status, reason, headers, payload = self._forward(body)
        if faults.restores is not None:
            headers = faults.restores.answer(op, self.path, status, headers)
        if faults.kms is not None:
            headers, payload = faults.kms.answer(op, status, headers, payload)
        seen.status = status
        if fault == "stall":
            # The server has acted on the request; its answer never arrives in time.
            time.sleep(faults.stall_seconds)
            if race and race[0] == "after":
                race[1]()
            self._reset()
            return
        if race and race[0] == "after":
            race[1]()
        self.send_response(status, reason)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP and not (name.lower() == "content-length" and self.command != "HEAD"):
                self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        if self.server.faults.kms is not None:
            headers = self.server.faults.kms.request_headers(headers)
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        # One upstream connection per client connection, kept alive: a new one per request doubles the latency.
        conn = getattr(self, "_upstream", None)
        if conn is None:
            conn = self._upstream = http.client.HTTPConnection(self.server.upstream_host, self.server.upstream_port, timeout=30)
        try:
            conn.request(self.command, self.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.reason, resp.getheaders(), resp.read()
        except Exception:
            conn.close()
            self._upstream = None
            raise

    def _answer_error(self, status: int, code: str, message: str) -> None:
        payload = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
        data = payload.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout turns close() into a TCP RST: the client sees "connection reset".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self._handle()
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def finish(self) -> None:
        upstream = getattr(self, "_upstream", None)
        if upstream is not None:
            upstream.close()
        with contextlib.suppress(OSError):
            super().finish()


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: tuple[str, int], faults: Faults) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream_host, self.upstream_port = upstream
        self.faults = faults

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # a client hanging up mid-request is what these tests are about


class FaultProxy:
    """A threaded reverse proxy on a free port of 127.0.0.1, forwarding to ``upstream`` unless a rule says otherwise."""

    def __init__(self, upstream_host: str, upstream_port: int, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self._server = _Server((upstream_host, upstream_port), self.faults)
        self.host = "127.0.0.1"
        self.port: int = self._server.server_address[1]
        # A short poll interval: shutdown() waits for it, and a suite stops many proxies.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=f"fault-proxy-{self.port}", daemon=True
        )

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def fail(self, op: str, nth: int = 1, fault: str = "500", times: int = 1) -> None:
        """Shorthand for ``self.faults.fail``."""
        self.faults.fail(op, nth, fault, times)


class KmsBucket:
    """Answers as from a bucket encrypting with SSE-KMS, whatever the server behind does.

    ETags in answers (PutObject, POST uploads, CopyObject, CompleteMultipartUpload, HeadObject,
    GetObject, ListObjectsV2) become 32 hex digits that are not the content's MD5 (a digest of the
    real ETag: stable per version, different for other bytes), and the answers carry
    ``x-amz-server-side-encryption: aws:kms`` and the key's ID. Conditional requests naming an
    ETag given out here are passed on with the real one. Signatures of rewritten requests no
    longer match: use it in front of moto, which does not check them.
    """

    _ETAG_XML = re.compile(rb"<ETag>(&quot;|&#34;|\")?([0-9a-f]{32})(-[0-9]+)?(&quot;|&#34;|\")?</ETag>")
    _REWRITTEN = {
        "PutObject",
        "PostObject",
        "CopyObject",
        "CompleteMultipartUpload",
        "HeadObject",
        "GetObject",
        "ListObjectsV2",
    }
    _ENCRYPTED = _REWRITTEN | {"CreateMultipartUpload", "UploadPart", "UploadPartCopy"}
    _CONDITIONS = ("if-match", "if-none-match", "x-amz-copy-source-if-match", "x-amz-copy-source-if-none-match")

    def __init__(self, key_id: str = "arn:aws:kms:us-east-1:111122223333:key/s3strata-test") -> None:
        self.key_id = key_id
        self._real: dict[str, str] = {}
        self._lock = threading.Lock()

    def fake(self, real: str) -> str:
        """Return the ETag given out for the real ETag ``real`` (hex digits, ``-N`` of a multipart upload kept)."""
        digits, dash, parts = real.partition("-")
        fake = hashlib.md5(b"kms:" + digits.encode()).hexdigest()
        with self._lock:
            self._real[fake] = digits
        return fake + dash + parts

    def _real_of(self, value: str) -> str:
        def one(etag: str) -> str:
            bare = etag.strip().strip('"')
            digits, dash, parts = bare.partition("-")
            with self._lock:
                real = self._real.get(digits)
            return f'"{real}{dash}{parts}"' if real else etag

        return ",".join(one(etag) for etag in value.split(","))

    def request_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """Return ``headers`` with the conditions' ETags turned back into the server's real ones."""
        return {k: self._real_of(v) if k.lower() in self._CONDITIONS else v for k, v in headers.items()}

    def answer(self, op: str, status: int, headers: list[tuple[str, str]], payload: bytes) -> tuple[list[tuple[str, str]], bytes]:
        """Return the answer's headers and body as a KMS bucket would send them."""
        if op not in self._ENCRYPTED or not 200 <= status < 300:
            return headers, payload
        out = [(k, v) for k, v in headers if not k.lower().startswith("x-amz-server-side-encryption")]
        if op in self._REWRITTEN:
            out = [(k, f'"{self.fake(v.strip().strip(chr(34)))}"' if k.lower() == "etag" else v) for k, v in out]
            payload = self._ETAG_XML.sub(
                lambda m: b"<ETag>&quot;" + self.fake((m.group(2) + (m.group(3) or b"")).decode()).encode() + b"&quot;</ETag>",
                payload,
            )
        out += [("x-amz-server-side-encryption", "aws:kms"), ("x-amz-server-side-encryption-aws-kms-key-id", self.key_id)]
        return out, payload


class SlowRestores:
    """Restores that take a while, in front of a server (moto) that completes them at once.

    A RestoreObject the server accepts starts a restore that stays ongoing until ``finish()`` (or
    ``seconds`` pass). Meanwhile, as S3 does, HEAD answers ``x-amz-restore: ongoing-request="true"``,
    another RestoreObject answers 409 RestoreAlreadyInProgress, GET answers 403 InvalidObjectState
    and a copy from the object 403 ObjectNotInActiveTierError (none of them reaching the server).
    """

    def __init__(self, seconds: float = 3600.0) -> None:
        self.seconds = seconds
        self._started: dict[str, float] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _object(target: str) -> str:
        return unquote(urlsplit(target).path).lstrip("/")

    def ongoing(self, target: str) -> bool:
        """Return True while the restore of the object at ``target`` ("/bucket/key") is under way."""
        with self._lock:
            started = self._started.get(self._object(target))
        return started is not None and time.monotonic() - started < self.seconds

    def finish(self) -> None:
        """Complete every restore under way: from now on the server's own answers pass."""
        with self._lock:
            self._started.clear()

    def refusal(self, op: str, target: str, headers: Any) -> tuple[int, str, str] | None:
        """Return the (status, code, message) S3 answers ``op`` with while its object's restore runs, if any."""
        if op == "RestoreObject" and self.ongoing(target):
            return 409, "RestoreAlreadyInProgress", "Object restore is already in progress"
        if op == "GetObject" and self.ongoing(target):
            return 403, "InvalidObjectState", "The operation is not valid for the object's storage class"
        source = headers.get("x-amz-copy-source")
        if op in ("CopyObject", "UploadPartCopy") and source and self.ongoing(source):
            return 403, "ObjectNotInActiveTierError", "The source object of the COPY operation is not in the active tier"
        return None

    def answer(self, op: str, target: str, status: int, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Return the answer's headers as S3 sends them while a restore runs; a restore the server accepted starts."""
        if op == "RestoreObject" and status == 202:  # 200: a restored copy's expiry extended, nothing to wait for
            with self._lock:
                self._started[self._object(target)] = time.monotonic()
        if op == "HeadObject" and self.ongoing(target):
            headers = [(k, v) for k, v in headers if k.lower() != "x-amz-restore"]
            headers.append(("x-amz-restore", 'ongoing-request="true"'))
        return headers
