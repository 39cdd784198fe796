"""What an upload sends: a file's bytes, or pieces of a file and a few bytes made in memory
(a faststart MP4 is the source's `ftyp`, a rewritten `moov`, then the source's other boxes).

The body is read straight from the source, read-only, never copied: `open()` streams any byte
range of it (a multipart part, or all of it for one PUT) in the small blocks botocore reads, and
seeks back for a resend, so a part never sits in memory whole (two uploads of four 16 MiB parts
each went from 346 to 207 MB peak RSS when parts stopped being read whole, README "Benchmarks",
W1), and memory does not grow with the part size. Every open checks that the file is
still the one the body was made from (device, inode, size, modification time): a recording
rewritten meanwhile fails the upload instead of sending a mix of old and new bytes.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from upload_jobs.errors import SourceChanged

# Large enough that hashing runs at the digest's speed, small enough not to matter in memory.
HASH_BLOCK_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class FileIdentity:
    """A file as it was seen: same device, inode, size and modification time, same bytes."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result) -> FileIdentity:
        """The identity of the file `stat` describes."""
        return cls(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class FileRange:
    """`length` bytes of the body's file from `offset`."""

    offset: int
    length: int


Piece = bytes | FileRange


@dataclass(frozen=True)
class UploadBody:
    """The bytes an upload sends, in order: ranges of `path` and bytes held in memory."""

    path: Path
    pieces: tuple[Piece, ...]
    identity: FileIdentity
    # How logs and the UI name it: the file, or what was done to it.
    description: str = ""
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts, at = [], 0
        for piece in self.pieces:
            starts.append(at)
            at += _length(piece)
        object.__setattr__(self, "_starts", tuple(starts))

    @classmethod
    def of_file(cls, path: Path) -> UploadBody:
        """The whole file at `path`, as it is now."""
        identity = FileIdentity.of(path.stat())
        return cls(path, (FileRange(0, identity.size),), identity, str(path))

    @property
    def size(self) -> int:
        """How many bytes the upload sends."""
        return sum(_length(piece) for piece in self.pieces)

    @property
    def is_whole_file(self) -> bool:
        """Whether the body is the file itself, byte for byte."""
        return self.pieces == (FileRange(0, self.identity.size),)

    @property
    def file_bytes(self) -> int:
        """How many of the body's bytes are read from the file (the rest is in memory)."""
        return sum(piece.length for piece in self.pieces if isinstance(piece, FileRange))

    def __str__(self) -> str:
        return self.description or str(self.path)

    def open(self, offset: int = 0, length: int | None = None) -> BodyReader:
        """A read-only, seekable stream of `length` bytes of the body from `offset` (to its end
        when `length` is None); `SourceChanged` when the file is no longer the one it was."""
        if length is None:
            length = self.size - offset
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"bytes {offset}+{length} are outside a body of {self.size}")
        return BodyReader(self, offset, length)

    def sha256(self) -> str:
        """Hex SHA-256 of the whole body."""
        return self._hexdigest(hashlib.sha256(), 0, self.size)

    def sha256_and_md5s(self, part_bytes: int) -> tuple[str, tuple[str, ...]]:
        """The body's SHA-256 and the MD5 of each `part_bytes` piece of it, in one read; the
        SHA-256 on a thread of its own beside the MD5s (hashlib lets go of the GIL on large
        blocks: the pass takes the slower hash's time, not the sum of both)."""
        whole = hashlib.sha256()
        md5s = []
        with ThreadPoolExecutor(1, thread_name_prefix="sha256") as sha256, self.open() as reader:
            previous: Future[None] | None = None
            for _ in range(max(1, -(-self.size // part_bytes))):
                part = hashlib.md5(usedforsecurity=False)
                left = part_bytes
                while left and (block := reader.read(min(HASH_BLOCK_BYTES, left))):
                    if previous is not None:
                        previous.result()  # the SHA-256 takes its blocks in order
                    previous = sha256.submit(whole.update, block)
                    part.update(block)
                    left -= len(block)
                md5s.append(part.hexdigest())
            if previous is not None:
                previous.result()
        return whole.hexdigest(), tuple(md5s)

    def md5(self, offset: int, length: int) -> str:
        """Hex MD5 of `length` bytes from `offset`: S3's ETag of a part holding them."""
        return self._hexdigest(hashlib.md5(usedforsecurity=False), offset, length)

    def _hexdigest(self, digest: Any, offset: int, length: int) -> str:
        with self.open(offset, length) as reader:
            for block in reader.blocks(HASH_BLOCK_BYTES):
                digest.update(block)
        return str(digest.hexdigest())

    def check_unchanged(self, stat: os.stat_result | None = None) -> None:
        """`SourceChanged` unless the file (`stat` of it, else as it is now) is the one the body
        was made from."""
        try:
            now = FileIdentity.of(stat or self.path.stat())
        except FileNotFoundError:
            raise SourceChanged(f"{self.path} was removed after it was checked") from None
        if now != self.identity:
            raise SourceChanged(
                f"{self.path} changed after it was checked (its size or modification time is "
                "not what it was): nothing of the new version was uploaded; retry the job"
            )

    def piece_at(self, position: int) -> int:
        """The index of the piece holding byte `position` of the body."""
        return bisect.bisect_right(self._starts, position) - 1

    def piece_start(self, index: int) -> int:
        """Where piece `index` starts in the body."""
        return self._starts[index]


def _length(piece: Piece) -> int:
    return piece.length if isinstance(piece, FileRange) else len(piece)


class BodyReader(io.RawIOBase):
    """`length` bytes of a body from `offset`, read as if they were a whole file."""

    def __init__(self, body: UploadBody, offset: int, length: int) -> None:
        super().__init__()
        self._body = body
        self._start = offset
        self._length = length
        self._position = 0
        self._file = body.path.open("rb") if body.file_bytes else None
        if self._file is not None:
            try:
                body.check_unchanged(os.fstat(self._file.fileno()))
            except SourceChanged:
                self._file.close()
                raise

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        """Always: this is a body to read."""
        return True

    def seekable(self) -> bool:
        """Always: botocore rewinds a body to sign it and to send it again on a retry."""
        return True

    def tell(self) -> int:
        """Position within the range."""
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move within the range (clamped to it), like a file of `length` bytes."""
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._length}[whence]
        self._position = min(max(0, base + offset), self._length)
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (all that is left of the range when negative)."""
        left = self._length - self._position
        wanted = left if size is None or size < 0 else min(size, left)
        chunks = []
        while wanted > 0:
            chunk = self._read_within_piece(self._start + self._position, wanted)
            chunks.append(chunk)
            self._position += len(chunk)
            wanted -= len(chunk)
        return b"".join(chunks)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill `buffer` from the range; how many bytes were read."""
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def blocks(self, block_bytes: int) -> Iterator[bytes]:
        """The rest of the range, `block_bytes` at a time."""
        while block := self.read(block_bytes):
            yield block

    def _read_within_piece(self, position: int, wanted: int) -> bytes:
        """At most `wanted` bytes from body position `position`, without crossing a piece."""
        index = self._body.piece_at(position)
        piece = self._body.pieces[index]
        into = position - self._body.piece_start(index)
        count = min(wanted, _length(piece) - into)
        if not isinstance(piece, FileRange):
            return piece[into : into + count]
        assert self._file is not None
        at = piece.offset + into
        # botocore reads in 8-64 KiB blocks: seek only when something moved the file.
        if self._file.tell() != at:
            self._file.seek(at)
        data = self._file.read(count)
        if len(data) != count:
            raise SourceChanged(f"{self._body.path} is shorter than when it was checked")
        return data

    def close(self) -> None:
        """Close the file underneath."""
        if self._file is not None:
            self._file.close()
        super().close()
