"""A moto S3 server over real HTTP on 127.0.0.1, optionally delaying every response."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import boto3
from botocore.config import Config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

ACCESS_KEY = "strata-test"
SECRET_KEY = "strata-test-secret"


class _Delay:
    """WSGI middleware: sleep before answering, and count requests in flight."""

    def __init__(self, app: Callable[..., Iterable[bytes]], delay: float) -> None:
        self.app = app
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with self._lock:
            self.in_flight += 1
            self.requests += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            return list(self.app(environ, start_response))
        finally:
            with self._lock:
                self.in_flight -= 1


class MotoS3Server:
    """moto's S3 in server mode on a free port of 127.0.0.1 (threaded, like ThreadedMotoServer)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.middleware = _Delay(DomainDispatcherApplication(create_backend_app), delay)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self._client: Any = None

    def start(self) -> MotoS3Server:
        self._server = make_server(self.host, 0, self.middleware, threaded=True, request_handler=MotoRequestHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"moto-s3-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self) -> Any:
        """Return this server's raw boto3 client (one per server: clients are thread-safe)."""
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> Any:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            # moto reports a multipart upload's composite CRC on its server-side copies as a full-object CRC.
            config=Config(
                s3={"addressing_style": "path"}, signature_version="s3v4", response_checksum_validation="when_required"
            ),
        )
