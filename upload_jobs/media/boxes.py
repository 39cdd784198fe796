"""Reading ISO-BMFF boxes from a seekable stream: headers, children, small payloads. Shared by
the top-level walk (`mp4`) and the fragments' durations (`fragments`)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

# Metadata boxes we parse are tiny; cap reads so a corrupt size cannot make us slurp a file.
MAX_METADATA_READ = 64 * 1024 * 1024


class Seekable(Protocol):
    """What the walk reads from: a file, or an upload body made in memory."""

    def seek(self, offset: int, whence: int = 0, /) -> int:
        """Move to `offset`."""
        ...

    def read(self, size: int = -1, /) -> bytes:
        """Up to `size` bytes."""
        ...


@dataclass(frozen=True)
class Box:
    """One top-level box: its four-character type, where it starts and its full size."""

    type: str
    offset: int
    size: int
    header_size: int

    @property
    def end(self) -> int:
        """Offset just past the box, as declared (may lie past end of file when truncated)."""
        return self.offset + self.size


def unpack_header(header: bytes) -> tuple[int, str]:
    """The 32-bit size and the type of the box header at the start of `header`."""
    size, raw_type = struct.unpack(">I4s", header[:8])
    return size, raw_type.decode("latin-1")


def children_of(f: Seekable, start: int, end: int) -> Iterator[tuple[str, int, int]]:
    """Yield (type, payload start, box end) for each child box between start and end."""
    offset = start
    while offset + 8 <= end:
        f.seek(offset)
        header = f.read(16)
        if len(header) < 8:
            return
        size, box_type = unpack_header(header)
        header_size = 8
        if size == 1 and len(header) == 16:
            (size,) = struct.unpack(">Q", header[8:16])
            header_size = 16
        elif size == 0:
            size = end - offset
        # A malformed child means we cannot trust anything after it in this parent.
        if size < header_size or offset + size > end:
            return
        yield box_type, offset + header_size, offset + size
        offset += size


def payload_of(f: Seekable, start: int, end: int) -> bytes:
    """The payload between `start` and `end`, at most `MAX_METADATA_READ` bytes of it."""
    f.seek(start)
    return f.read(min(end - start, MAX_METADATA_READ))
