"""Addresses on this machine where nothing listens: a server that is not running."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 where nothing listens now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port_url(path: str = "") -> str:
    """An http:// URL on 127.0.0.1 (plus `path`) where nothing listens: connections are refused."""
    return f"http://127.0.0.1:{free_port()}{path}"
