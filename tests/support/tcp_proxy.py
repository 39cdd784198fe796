"""A TCP forwarder on 127.0.0.1 that can cut its connections: a database "gone for a moment".

`cut(seconds)` closes every open connection at once (both ends, as a failover or a network
blip does) and, for `seconds`, closes each new connection as soon as it is accepted.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from upload_jobs.running import StartedInWith

__all__ = ["TcpProxy"]

_BUFFER = 64 * 1024


class TcpProxy(StartedInWith):
    """Forwards 127.0.0.1:<port> to `upstream_host:upstream_port`, byte for byte."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._refuse_until = 0.0
        self._stopping = False
        self.connections_cut = 0
        self.connections_refused = 0

    @property
    def port(self) -> int:
        """The port clients connect to."""
        return int(self._listener.getsockname()[1])

    def cut(self, seconds: float) -> None:
        """Drop every open connection now and refuse new ones for `seconds`."""
        with self._lock:
            self._refuse_until = time.monotonic() + seconds
            doomed, self._open = self._open, []
            self.connections_cut += len(doomed) // 2
        for sock in doomed:
            _close(sock)

    def wait_until_accepting(self) -> None:
        """Return once the current cut (if any) is over."""
        with self._lock:
            left = self._refuse_until - time.monotonic()
        if left > 0:
            time.sleep(left)

    def start(self) -> TcpProxy:
        """Accept connections in a daemon thread; returns self."""
        threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop accepting and close every connection."""
        self._stopping = True
        _close(self._listener)
        self.cut(0)

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refusing = time.monotonic() < self._refuse_until
                if refusing:
                    self.connections_refused += 1
            if refusing:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    """Copy bytes one way until either side closes, then close both."""
    with contextlib.suppress(OSError):
        while chunk := source.recv(_BUFFER):
            target.sendall(chunk)
    _close(source)
    _close(target)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
