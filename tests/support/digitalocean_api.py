"""A stand-in for DigitalOcean's API, on 127.0.0.1: the only stand-in the tests use, since the
real API cannot be reached from here. It answers the CDN purge the way the real one does, and
checks what the real one would: the method and path, a bearer token it knows, a JSON body with
the files to purge, the CDN endpoint; a rate limit (429 with Retry-After) can be programmed."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

PURGE_PATH = "/v2/cdn/endpoints/{endpoint_id}/cache"


@dataclass(frozen=True)
class ApiRequest:
    """One request as the stand-in received it."""

    method: str
    path: str
    authorization: str
    content_type: str
    body: Any
    status: int = 0  # what the stand-in answered


@dataclass
class DigitalOceanApi:
    """The stand-in: a token, the CDN endpoints it has, and what it was asked."""

    token: str
    endpoint_ids: set[str]
    requests: list[ApiRequest] = field(default_factory=list)
    _rate_limited: deque[float] = field(default_factory=deque)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """The API's base URL, for UPLOAD_JOBS_DIGITALOCEAN_API_URL."""
        assert self._server is not None, "use the stand-in in a `with` block"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def rate_limit_next(self, n: int, retry_after_seconds: float = 1.0) -> None:
        """Answer the next `n` requests 429 Too Many Requests, with Retry-After."""
        self._rate_limited.extend([retry_after_seconds] * n)

    def purges(self) -> list[ApiRequest]:
        """The purge requests that were accepted (answered 204)."""
        return [r for r in self.requests if r.method == "DELETE" and r.status == 204]

    def answer(self, request: ApiRequest) -> tuple[int, dict[str, Any] | None]:
        """What the real API answers this request (rate limits aside)."""
        if request.authorization != f"Bearer {self.token}":
            return 401, {"id": "unauthorized", "message": "Unable to authenticate you"}
        ids = {PURGE_PATH.format(endpoint_id=i): i for i in self.endpoint_ids}
        if request.method != "DELETE" or request.path not in ids:
            return 404, {"id": "not_found", "message": "The resource could not be found."}
        files = request.body.get("files") if isinstance(request.body, dict) else None
        if (
            request.content_type != "application/json"
            or not isinstance(files, list)
            or not files
            or not all(isinstance(path, str) and path for path in files)
        ):
            return 422, {"id": "unprocessable_entity", "message": "files must be a list of paths"}
        return 204, None

    def __enter__(self) -> DigitalOceanApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_DELETE(self) -> None:
                self._handle()

            def do_GET(self) -> None:
                self._handle()

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    body = raw.decode(errors="replace")
                request = ApiRequest(
                    self.command,
                    self.path,
                    self.headers.get("Authorization", ""),
                    (self.headers.get("Content-Type") or "").split(";")[0],
                    body,
                )
                with api._lock:
                    retry_after = api._rate_limited.popleft() if api._rate_limited else None
                    if retry_after is not None:
                        status, payload = 429, {"id": "too_many_requests", "message": "slow down"}
                    else:
                        status, payload = api.answer(request)
                    api.requests.append(replace(request, status=status))
                headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
                self._send(status, payload, headers)

            def _send(
                self,
                status: int,
                payload: dict[str, Any] | None,
                headers: dict[str, str] | None = None,
            ) -> None:
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
