"""Addresses on this machine where nothing listens: a server that is not running."""

from __future__ import annotations

import socket


def closed_port_url(path: str = "") -> str:
    """An http:// URL on 127.0.0.1 (plus `path`) where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
