"""A fault-injecting HTTP reverse proxy in front of an S3 endpoint, on real HTTP at 127.0.0.1.

boto3 points `endpoint_url` at the proxy. Requests are forwarded verbatim (method, target, headers
including Authorization, body) so SigV4 signatures stay valid; programmed faults answer instead
with an S3-style XML error or by closing the connection without a response. A rule may also hold
a request for a while first: `slow_next`/`slow_always` then forward it (an upload in flight that
a test can catch), `fail_*(delay_seconds=...)` then break it (a slow failure). `fail_randomly`
breaks a share of all requests with a seeded mix of faults (see `fault_rules.RandomFaults`).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from tests.support.fault_rules import (
    Fault,
    FaultRule,
    RandomFaults,
    delay,
    kinds_set,
    methods_set,
    slow_rule,
)
from upload_jobs.running import StartedInWith
from upload_jobs.storage.local_s3 import BackgroundServer, S3Request, classify_s3_request

__all__ = ["Fault", "FaultRule", "S3FaultProxy"]

# Headers that describe one hop, not the request; http.client and the handler set their own.
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}


class _QuietServer(ThreadingHTTPServer):
    """A client that went away mid-answer (a test stopped it, a run was killed) is no error of
    the proxy's: no traceback on stderr for it."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet for dropped connections; socketserver's report for anything else."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class S3FaultProxy(StartedInWith):
    """Reverse proxy to `upstream_url` that counts requests by (method, kind) and injects faults."""

    def __init__(self, upstream_url: str, host: str = "127.0.0.1", port: int = 0) -> None:
        upstream = urlsplit(upstream_url)
        if upstream.scheme != "http" or not upstream.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {upstream_url!r}")
        self._upstream_host = upstream.hostname
        self._upstream_port = upstream.port or 80
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._random: RandomFaults | None = None
        self._requests: list[S3Request] = []
        self._faulted: list[S3Request] = []
        self._delayed: list[S3Request] = []
        # Set by stop(): requests being held are dropped at once instead of outliving the proxy.
        self._stopping = threading.Event()
        self._headers: list[tuple[S3Request, dict[str, str]]] = []
        self._forwarded: list[tuple[S3Request, int]] = []
        self._answers: list[tuple[S3Request, int]] = []
        self._server: ThreadingHTTPServer | None = None
        self._background = BackgroundServer("s3-fault-proxy")

    # --- programming faults -------------------------------------------------------------------

    def fail_next(
        self,
        n: int,
        status: int = 503,
        code: str = "SlowDown",
        *,
        message: str = "Injected fault",
        methods: set[str] | None = None,
        kinds: set[str] | None = None,
        min_part_number: int | None = None,
        drop_connection: bool = False,
        delay_seconds: float = 0.0,
        upload_id: str | None = None,
        header: tuple[str, str] | None = None,
    ) -> None:
        """Breaks the next `n` matching requests (an XML error, or a dropped connection),
        after holding each `delay_seconds`; `upload_id` and `header` narrow what matches."""
        self._add_rule(
            FaultRule(
                status,
                code,
                message,
                n,
                methods_set(methods),
                kinds_set(kinds),
                min_part_number,
                drop_connection,
                delay(delay_seconds),
                upload_id=upload_id,
                header=header,
            )
        )

    def fail_always(
        self,
        status: int = 403,
        code: str = "AccessDenied",
        *,
        message: str = "Injected fault",
        methods: set[str] | None = None,
        kinds: set[str] | None = None,
        min_part_number: int | None = None,
        drop_connection: bool = False,
        delay_seconds: float = 0.0,
        upload_id: str | None = None,
        header: tuple[str, str] | None = None,
    ) -> None:
        """Breaks every matching request until `clear_faults()`, after holding each
        `delay_seconds`; `upload_id` and `header` narrow what matches."""
        self._add_rule(
            FaultRule(
                status,
                code,
                message,
                None,
                methods_set(methods),
                kinds_set(kinds),
                min_part_number,
                drop_connection,
                delay(delay_seconds),
                upload_id=upload_id,
                header=header,
            )
        )

    def slow_next(
        self,
        n: int,
        delay_seconds: float,
        *,
        methods: set[str] | None = None,
        kinds: set[str] | None = None,
        min_part_number: int | None = None,
        after_kind: str | None = None,
    ) -> None:
        """Holds the next `n` matching requests `delay_seconds` each, then forwards them;
        with `after_kind`, only requests after one of that kind was seen."""
        self._add_rule(slow_rule(n, delay_seconds, methods, kinds, min_part_number, after_kind))

    def corrupt_next(self, n: int, *, kinds: set[str] | None = None) -> None:
        """Forwards the next `n` matching requests with one byte of their body changed, as a
        bad link or disk would (a body that is empty is forwarded as it is)."""
        rule = FaultRule(200, "", "", n, None, kinds_set(kinds), forward=True, corrupt_body=True)
        self._add_rule(rule)

    def slow_always(
        self,
        delay_seconds: float,
        *,
        methods: set[str] | None = None,
        kinds: set[str] | None = None,
        min_part_number: int | None = None,
    ) -> None:
        """Holds every matching request `delay_seconds`, then forwards it (until cleared)."""
        self._add_rule(slow_rule(None, delay_seconds, methods, kinds, min_part_number))

    def fail_randomly(
        self,
        share: float,
        *,
        seed: int,
        faults: Sequence[Fault] = tuple(Fault),
        slow_seconds: float = 1.0,
        kinds: set[str] | None = None,
    ) -> RandomFaults:
        """Breaks `share` of the requests no rule matches, each with a fault drawn from
        `faults`; returns the mix, whose `drawn` counts what was injected."""
        mix = RandomFaults(share, seed, faults, slow_seconds, kinds_set(kinds))
        with self._lock:
            self._random = mix
        return mix

    def clear_faults(self) -> None:
        """Removes every programmed fault, the random mix too."""
        with self._lock:
            self._rules.clear()
            self._random = None

    # --- what was seen ------------------------------------------------------------------------

    @property
    def requests(self) -> list[S3Request]:
        """Every request received (faulted or forwarded), oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def faulted(self) -> list[S3Request]:
        """The requests answered by a programmed fault instead of upstream."""
        with self._lock:
            return list(self._faulted)

    @property
    def delayed(self) -> list[S3Request]:
        """The requests a slow rule held before forwarding them (counted when the hold starts)."""
        with self._lock:
            return list(self._delayed)

    def headers_of(self, kind: str) -> list[dict[str, str]]:
        """The request headers (names lower-cased) of every request of `kind`, oldest first."""
        with self._lock:
            return [dict(headers) for request, headers in self._headers if request.kind == kind]

    def counts(self) -> Counter[tuple[str, str]]:
        """Requests received per (method, kind)."""
        return Counter((r.method, r.kind) for r in self.requests)

    def count(self, kind: str, method: str | None = None) -> int:
        """How many requests of `kind` (and `method`, when given) were received."""
        return sum(
            1 for r in self.requests if r.kind == kind and (method is None or r.method == method)
        )

    def forwarded_bodies(self, kind: str) -> list[tuple[S3Request, int]]:
        """Each request of `kind` passed on to the endpoint, with its body's size in bytes."""
        with self._lock:
            return [(request, size) for request, size in self._forwarded if request.kind == kind]

    def statuses(self, kind: str) -> list[int]:
        """The status upstream answered each forwarded request of `kind` with, oldest first."""
        with self._lock:
            return [status for request, status in self._answers if request.kind == kind]

    def stored(self, kind: str) -> int:
        """How many requests of `kind` upstream accepted (a 2xx answer)."""
        return sum(1 for status in self.statuses(kind) if 200 <= status < 300)

    def reset_counts(self) -> None:
        """Forgets the requests seen so far; faults stay programmed."""
        with self._lock:
            self._answers.clear()
            self._forwarded.clear()
            self._requests.clear()
            self._faulted.clear()
            self._delayed.clear()
            self._headers.clear()

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> S3FaultProxy:
        """Binds a port and serves in a daemon thread; returns self."""
        if self._server is None:
            self._stopping.clear()
            self._server = _QuietServer((self._host, self._port), self._handler_class())
            self._background.serve(self._server)
        return self

    def stop(self) -> None:
        """Stops serving and frees the port; safe to call twice."""
        self._stopping.set()
        self._background.stop()
        self._server = None

    @property
    def endpoint_url(self) -> str:
        """`http://127.0.0.1:<port>` of the proxy."""
        if self._server is None:
            raise RuntimeError("S3FaultProxy is not running: call start() or use it in `with`")
        return f"http://{self._host}:{self._server.server_port}"

    # --- internals ----------------------------------------------------------------------------

    def _add_rule(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def _record(self, request: S3Request, headers: dict[str, str]) -> FaultRule | None:
        """Counts `request` and consumes the first live rule that matches it, if any."""
        with self._lock:
            self._requests.append(request)
            self._headers.append((request, headers))
            seen = {earlier.kind for earlier in self._requests[:-1]}
            chosen = next(
                (
                    rule
                    for rule in self._rules
                    if rule.remaining != 0
                    and rule.matches(request, headers)
                    and (rule.after_kind is None or rule.after_kind in seen)
                ),
                None,
            )
            if chosen is not None and chosen.remaining is not None:
                chosen.remaining -= 1
            if chosen is None and self._random is not None:
                chosen = self._random.draw(request)
            if chosen is not None:
                (self._delayed if chosen.forward else self._faulted).append(request)
            return chosen

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_request(self) -> None:
                request = classify_s3_request(self.command, self.path)
                headers = {name.lower(): value for name, value in self.headers.items()}
                rule = proxy._record(request, headers)
                self.close_connection = True
                if rule is not None and rule.drop_mid_body:
                    self._read_half_of_body()
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                # Otherwise the whole body is read first: answering early makes the client see
                # a reset.
                body = self._read_body()
                # Waiting on the stop event, not sleeping: a proxy being stopped drops what it
                # holds instead of forwarding it after the test has moved on.
                delay = rule.delay_seconds if rule is not None else 0.0
                if delay > 0 and proxy._stopping.wait(delay):
                    with contextlib.suppress(OSError):  # the client may have gone meanwhile
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if rule is not None and rule.forward:
                    if rule.corrupt_body and body:
                        body = bytes([body[0] ^ 0xFF]) + body[1:]
                    self._forward(request, body)
                    return
                if rule is not None and rule.drop_connection:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if rule is not None:
                    self._send_error_xml(rule)
                    return
                self._forward(request, body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_request

            def _read_body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        chunk = self.rfile.read(size + 2)[:size]  # each chunk ends in CRLF
                        if size == 0:
                            break
                        chunks.append(chunk)
                    return b"".join(chunks)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _read_half_of_body(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length // 2)
                elif "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    self.rfile.readline()  # the first chunk's size line: the body has begun

            def _send_error_xml(self, rule: FaultRule) -> None:
                payload = (
                    '<?xml version="1.0" encoding="UTF-8"?>\n'
                    f"<Error><Code>{escape(rule.code)}</Code>"
                    # An empty message sends none, as Ceph RGW does.
                    + (f"<Message>{escape(rule.message)}</Message>" if rule.message else "")
                    + "<RequestId>fault-proxy</RequestId></Error>"
                ).encode()
                self.send_response(rule.status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _forward(self, request: S3Request, body: bytes) -> None:
                with proxy._lock:
                    proxy._forwarded.append((request, len(body)))
                upstream = http.client.HTTPConnection(
                    proxy._upstream_host, proxy._upstream_port, timeout=60
                )
                try:
                    upstream.putrequest(
                        self.command, self.path, skip_host=True, skip_accept_encoding=True
                    )
                    chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
                    for name, value in self.headers.items():
                        if name.lower() in _HOP_BY_HOP:
                            continue
                        if chunked and name.lower() == "content-length":
                            continue
                        upstream.putheader(name, value)
                    if chunked:
                        upstream.putheader("Content-Length", str(len(body)))
                    upstream.endheaders(body or None)
                    response = upstream.getresponse()
                    payload = response.read()
                    with proxy._lock:
                        proxy._answers.append((request, response.status))
                    self.send_response(response.status, response.reason)
                    for name, value in response.getheaders():
                        if name.lower() in _HOP_BY_HOP or name.lower() == "content-length":
                            continue
                        self.send_header(name, value)
                    # HEAD answers carry the object's length but no body.
                    head_length = response.getheader("Content-Length")
                    length = head_length if self.command == "HEAD" else None
                    self.send_header("Content-Length", length or str(len(payload)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    upstream.close()

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the proxy's counters are the log."""

        return Handler
