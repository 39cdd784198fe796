"""A local S3-compatible server (moto, over real HTTP on 127.0.0.1) for the demo and the tests.

moto keeps its buckets in process-wide state: every server started in one process sees the same
buckets, so callers should use their own bucket names.
"""

from __future__ import annotations

import socketserver
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from upload_jobs.running import StartedInWith

__all__ = ["REQUEST_KINDS", "LocalS3Server", "S3Request", "classify_s3_request"]

# What the upload path does, as seen on the wire; everything else is "other".
REQUEST_KINDS = (
    "put_object",
    "upload_part",
    "create_multipart",
    "complete_multipart",
    "abort_multipart",
    "head",
    "other",
)

WSGIEnviron = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[WSGIEnviron, StartResponse], Iterable[bytes]]


@dataclass(frozen=True)
class S3Request:
    """One request as the server (or a proxy) saw it, with path-style bucket and key."""

    method: str
    kind: str
    bucket: str
    key: str
    part_number: int | None = None
    upload_id: str | None = None


def classify_s3_request(method: str, target: str) -> S3Request:
    """Names a path-style S3 request (`/bucket/key?query`) by what it does in an upload."""
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
    method = method.upper()
    part_number = _int_or_none(query.get("partNumber", [""])[0])
    kind = "other"
    if method == "HEAD":
        kind = "head"
    elif key and method == "PUT" and "uploadId" in query and "partNumber" in query:
        kind = "upload_part"
    elif key and method == "POST" and "uploads" in query:
        kind = "create_multipart"
    elif key and method == "POST" and "uploadId" in query:
        kind = "complete_multipart"
    elif key and method == "DELETE" and "uploadId" in query:
        kind = "abort_multipart"
    elif key and method == "PUT" and not query:
        kind = "put_object"
    upload_id = query.get("uploadId", [None])[0]
    return S3Request(method, kind, bucket, key, part_number, upload_id)


def _int_or_none(text: str) -> int | None:
    """`text` as an int, or None when it is not one."""
    try:
        return int(text)
    except ValueError:
        return None


class _QuietMotoRequestHandler(MotoRequestHandler):
    """moto's request handler without werkzeug's per-request access log on stderr."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Drops the access log line; errors still go through werkzeug's `log_error`."""


class BackgroundServer:
    """Serves a `socketserver` server from a daemon thread; `stop()` is safe to call twice."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._server: socketserver.BaseServer | None = None
        self._thread: threading.Thread | None = None

    def serve(self, server: socketserver.BaseServer) -> None:
        """Serve `server` (already bound, so its port is known) until `stop()`."""
        self._server = server
        # A short poll interval keeps stop() (once per test) from taking half a second.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name=self._name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and free the port."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=10)


class LocalS3Server(StartedInWith):
    """moto's S3 on 127.0.0.1 and a free port, counting the requests it serves."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._background = BackgroundServer("local-s3")
        self._lock = threading.Lock()
        self._requests: list[S3Request] = []

    def start(self) -> LocalS3Server:
        """Binds the port and serves in a daemon thread; returns self for chaining."""
        if self._server is not None:
            return self
        app = DomainDispatcherApplication(create_backend_app)
        # Binding happens in make_server, so the real port is known before serving starts.
        self._server = make_server(
            self._host,
            self._port,
            self._counting(app),
            threaded=True,
            request_handler=_QuietMotoRequestHandler,
        )
        self._background.serve(self._server)
        return self

    def stop(self) -> None:
        """Stops serving and frees the port; safe to call twice."""
        self._background.stop()
        self._server = None

    @property
    def endpoint_url(self) -> str:
        """`http://127.0.0.1:<port>`, for boto3's `endpoint_url`."""
        if self._server is None:
            raise RuntimeError("LocalS3Server is not running: call start() or use it in `with`")
        return f"http://{self._server.host}:{self._server.port}"

    @property
    def requests(self) -> list[S3Request]:
        """A copy of every request served so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def counts(self, key: str | None = None) -> Counter[tuple[str, str]]:
        """Requests served per (method, kind), optionally only those for one object key."""
        return Counter((r.method, r.kind) for r in self.requests if key is None or r.key == key)

    def count(self, kind: str, key: str | None = None) -> int:
        """How many requests of one kind were served, optionally for one object key."""
        return sum(1 for r in self.requests if r.kind == kind and (key is None or r.key == key))

    def reset_counts(self) -> None:
        """Forgets the requests counted so far (the stored objects stay)."""
        with self._lock:
            self._requests.clear()

    def _counting(self, app: WSGIApp) -> WSGIApp:
        """Wraps the moto app so each request is recorded before moto handles it."""

        def counted(environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
            # The raw target keeps the percent-encoding, so keys decode exactly once.
            target = environ.get("RAW_URI") or environ.get("REQUEST_URI") or "/"
            request = classify_s3_request(environ.get("REQUEST_METHOD", "GET"), target)
            with self._lock:
                self._requests.append(request)
            return app(environ, start_response)

        return counted
