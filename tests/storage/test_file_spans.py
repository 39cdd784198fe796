"""`FileSpan`: one multipart part's bytes, streamed from the file and rewound for a resend."""

from __future__ import annotations

import os
from pathlib import Path

from upload_jobs.storage.file_spans import FileSpan

CONTENT = bytes(range(256)) * 40  # 10,240 bytes, each position recognisable


def test_a_span_reads_as_its_own_small_file(tmp_path: Path) -> None:
    path = tmp_path / "video.mp4"
    path.write_bytes(CONTENT)
    with FileSpan(path, 1000, 3000) as span:
        assert len(span) == 3000 and span.tell() == 0
        assert span.read(10) == CONTENT[1000:1010]
        assert span.read() == CONTENT[1010:4000]
        assert span.read(5) == b"" and span.tell() == 3000

        # A retry rewinds the body and sends the same bytes again.
        assert span.seek(0) == 0 and span.read() == CONTENT[1000:4000]
        assert span.seek(-10, os.SEEK_END) == 2990 and span.read() == CONTENT[3990:4000]
        assert span.seek(5000) == 3000  # never past the span's end
        buffer = bytearray(8)
        span.seek(2)
        assert span.readinto(buffer) == 8 and bytes(buffer) == CONTENT[1002:1010]
    assert span.closed


def test_the_last_span_stops_at_the_end_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "video.mp4"
    path.write_bytes(CONTENT)
    with FileSpan(path, 10_000, 240) as span:
        assert span.read(1000) == CONTENT[10_000:] and span.read() == b""
