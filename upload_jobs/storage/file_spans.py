"""A byte range of a file as a read-only, seekable stream: one multipart part's body.

botocore streams such a body in small blocks (and seeks back to resend it on a retry), so a
part never sits in memory whole: two uploads of four 16 MiB parts each went from 346 to 207 MB
peak RSS (README "Benchmarks", W1), and memory no longer grows with the chunk size.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from types import TracebackType


class FileSpan(io.RawIOBase):
    """`length` bytes of `path` from `offset`, read as if they were the whole file."""

    def __init__(self, path: Path, offset: int, length: int) -> None:
        super().__init__()
        self._file = path.open("rb")
        self._start = offset
        self._length = length
        self._position = 0

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        """Always: this is a body to read."""
        return True

    def seekable(self) -> bool:
        """Always: botocore rewinds a body to sign it and to send it again on a retry."""
        return True

    def tell(self) -> int:
        """Position within the span."""
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move within the span (clamped to it), like a file of `length` bytes."""
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._length}[whence]
        self._position = min(max(0, base + offset), self._length)
        return self._position

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that is left of the span when negative)."""
        left = self._length - self._position
        wanted = left if size is None or size < 0 else min(size, left)
        if wanted <= 0:
            return b""
        # botocore reads a body in 8-64 KiB blocks: seek only when something moved the file.
        if self._file.tell() != self._start + self._position:
            self._file.seek(self._start + self._position)
        data = self._file.read(wanted)
        self._position += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill `buffer` from the span; how many bytes were read."""
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Close the underlying file."""
        self._file.close()
        super().close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
