"""How much a request may send, per route: a few KB for the login form, nothing much for the JSON
API (its requests carry no body), and never more than what a route reads.

Without it, `POST /login` read a body of any size before refusing it: one 300 MiB request took
the web process from 145 MB to 1,070 MB. The limit is checked against Content-Length before the
app runs, and counted as a body without one streams in.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The login form: the token field, URL-encoded.
LOGIN_BODY_BYTES = 4 * 1024
# Everything else: the API's POSTs carry no body (a client may still send a small one).
DEFAULT_BODY_BYTES = 1024
LIMITS = {"/login": LOGIN_BODY_BYTES}


class BodyTooLarge(Exception):
    """A request body grew past its route's limit while it was being read."""


def body_limit(path: str) -> int:
    """The most a request to `path` may send, in bytes."""
    return LIMITS.get(path, DEFAULT_BODY_BYTES)


class BodyLimit:
    """ASGI middleware: 413, in the API's own shape, for a body over its route's limit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(send, limit)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge
            return message

        async def noting_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, noting_send)
        except BodyTooLarge:
            if not started:
                await _too_large(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send, limit: int) -> None:
    detail = f"Request body too large: this route takes at most {limit} bytes."
    body = json.dumps({"detail": detail, "error_kind": None}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
