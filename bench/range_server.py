"""A static file server answering HTTP range requests in constant time, for the startup benchmark.

moto's server copies an object's whole value to answer a range of it (~0.23 s a request for a
235 MB object here, 0.01 s for 24 MB): a cost no CDN has, and one that grows with the very
requests faststart saves. The benchmark therefore serves what the bucket holds, downloaded
back, from this server: a seek costs what the link makes it cost.
"""

from __future__ import annotations

import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BLOCK_BYTES = 64 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeServer:
    """Serves the files under `root` on 127.0.0.1:<port> from a daemon thread."""

    def __init__(self, root: Path) -> None:
        handler = type("Handler", (_RangeHandler,), {"root": root.resolve()})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]

    def __enter__(self) -> RangeServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _RangeHandler(BaseHTTPRequestHandler):
    root: Path
    protocol_version = "HTTP/1.1"  # keep-alive, as a CDN edge does

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the benchmark prints its own lines."""

    def do_GET(self) -> None:
        path = (self.root / self.path.lstrip("/").split("?")[0]).resolve()
        if self.root not in path.parents or not path.is_file():
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        size = path.stat().st_size
        start, end = 0, size - 1
        status = HTTPStatus.OK
        wanted = _RANGE.match(self.headers.get("Range", ""))
        if wanted and (wanted[1] or wanted[2]):
            if wanted[1]:
                start, end = int(wanted[1]), min(int(wanted[2] or size - 1), size - 1)
            else:  # a suffix: the last N bytes
                start = max(0, size - int(wanted[2]))
            status = HTTPStatus.PARTIAL_CONTENT
        self.send_response(status)
        self.send_header("Content-Type", _content_type(path))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if status is HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        try:
            with path.open("rb") as f:
                f.seek(start)
                left = end - start + 1
                while left > 0 and (block := f.read(min(BLOCK_BYTES, left))):
                    self.wfile.write(block)
                    left -= len(block)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser had what it wanted and went on to another range


def _content_type(path: Path) -> str:
    """HLS playlists as what they are (a player checks), every other file as MP4."""
    return "application/vnd.apple.mpegurl" if path.suffix == ".m3u8" else "video/mp4"
