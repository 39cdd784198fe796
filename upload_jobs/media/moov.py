"""The movie box (`moov`) as a tree that writes itself back byte for byte, with its chunk offset
tables (`stco`, `co64`) read and rewritten: what moving `moov` in a file needs.

Only the boxes on the way to a sample table are opened (`moov/trak/mdia/minf/stbl`, and
`udta`, `meta` and `dinf` to look for what would make a move unsafe); every other box is kept as
its raw bytes. FFmpeg's `tools/qt-faststart.c` patches offsets by scanning the bytes for "stco",
which a tag or codec payload can spell by chance; walking the boxes cannot be fooled that way.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

# Boxes whose payload is a list of boxes and that lead to a sample table or a metadata block.
CONTAINERS = frozenset({"moov", "trak", "mdia", "minf", "stbl", "udta", "dinf", "edts"})
CHUNK_OFFSET_TYPES = frozenset({"stco", "co64"})
SELF_REFERENCE_TYPES = frozenset({"url ", "alis"})
MAX_32 = 0xFFFFFFFF
_COUNT_AT = 4  # version and flags (4 bytes), then the entry count
_ENTRIES_AT = 8


# Limits no real recording's index comes near (a few boxes per track, five levels deep), so that
# a hostile one costs bounded time and memory: refused, never followed.
MAX_DEPTH = 32
MAX_BOXES = 100_000


class MoovUnreadable(ValueError):
    """A box inside `moov` declares a size its parent cannot hold, or the index nests deeper
    or holds more boxes than any recording's: the move refuses it."""


@dataclass(slots=True)  # up to MAX_BOXES of them: no per-box __dict__
class Atom:
    """A box: its type and either its raw payload or, for a container, its children."""

    type: str
    payload: bytes = b""
    children: list[Atom] | None = None

    def serialize(self) -> bytes:
        """The box as it goes into a file: header (64-bit only when it must be), then payload."""
        body = self.payload if self.children is None else b"".join(c.serialize() for c in self)
        size = 8 + len(body)
        kind = self.type.encode("latin-1")
        if size > MAX_32:
            return struct.pack(">I4sQ", 1, kind, size + 8) + body
        return struct.pack(">I4s", size, kind) + body

    @property
    def size(self) -> int:
        """The serialized size in bytes (computed without building the bytes)."""
        body = len(self.payload) if self.children is None else sum(c.size for c in self)
        return body + (8 if body + 8 <= MAX_32 else 16)

    def __iter__(self) -> Iterator[Atom]:
        return iter(self.children or [])

    def walk(self) -> Iterator[tuple[tuple[str, ...], Atom]]:
        """Every box below this one, depth first, with the types of the boxes above it (each
        box visited once: the parser bounds the depth, so a path is at most `MAX_DEPTH` long)."""
        stack: list[tuple[tuple[str, ...], Iterator[Atom]]] = [((self.type,), iter(self))]
        while stack:
            path, siblings = stack[-1]
            child = next(siblings, None)
            if child is None:
                stack.pop()
                continue
            yield path, child
            if child.children:
                stack.append(((*path, child.type), iter(child.children)))


def parse_moov(data: bytes) -> Atom:
    """The tree of a whole `moov` box (`data` starts at its header)."""
    atoms = parse_boxes(data, 0, len(data))
    if len(atoms) != 1 or atoms[0].type != "moov":
        raise MoovUnreadable("the bytes are not exactly one moov box")
    return atoms[0]


def parse_boxes(data: bytes, start: int, end: int) -> list[Atom]:
    """The boxes in `data[start:end]`; containers are opened, the others kept raw. Iterative,
    at most `MAX_DEPTH` levels and `MAX_BOXES` boxes: time and memory linear in the bytes."""
    top: list[Atom] = []
    # Each level: the list its boxes go into, where the next box starts, where the level ends.
    levels: list[tuple[list[Atom], list[int], int]] = [(top, [start], end)]
    count = 0
    while levels:
        siblings, cursor, level_end = levels[-1]
        offset = cursor[0]
        if offset >= level_end:
            levels.pop()
            continue
        box_type, header, size = _box_header(data, offset, level_end)
        count += 1
        if count > MAX_BOXES:
            raise MoovUnreadable(f"moov holds more than {MAX_BOXES:,} boxes")
        cursor[0] = offset + size
        if box_type in CONTAINERS:
            if len(levels) >= MAX_DEPTH:
                raise MoovUnreadable(f"moov nests boxes more than {MAX_DEPTH} levels deep")
            children: list[Atom] = []
            siblings.append(Atom(box_type, children=children))
            levels.append((children, [offset + header], offset + size))
        else:
            siblings.append(Atom(box_type, payload=data[offset + header : offset + size]))
    return top


def _box_header(data: bytes, offset: int, end: int) -> tuple[str, int, int]:
    """The type, header size and whole size of the box at `offset`, which must end by `end`."""
    if end - offset < 8:
        raise MoovUnreadable(f"{end - offset} stray bytes at offset {offset} of moov")
    size, raw_type = struct.unpack_from(">I4s", data, offset)
    box_type = raw_type.decode("latin-1")
    header = 8
    if size == 1:
        if end - offset < 16:
            raise MoovUnreadable(f"box {box_type!r} is cut inside its header")
        (size,) = struct.unpack_from(">Q", data, offset + 8)
        header = 16
    elif size == 0:
        size = end - offset  # to the end of the parent
    if size < header or offset + size > end:
        raise MoovUnreadable(f"box {box_type!r} at offset {offset} of moov has size {size}")
    return box_type, header, size


@dataclass
class ChunkOffsets:
    """One track's chunk offset table: the file offset of each chunk of its samples."""

    track_id: int
    box_type: str  # stco (32-bit) or co64
    offsets: array[int] = field(default_factory=lambda: array("Q"))


def chunk_offset_tables(moov: Atom) -> list[ChunkOffsets]:
    """The chunk offset table of every track, in track order (`MoovUnreadable` if one is cut)."""
    tables = []
    for trak in (child for child in moov if child.type == "trak"):
        for _, atom in trak.walk():
            if atom.type in CHUNK_OFFSET_TYPES:
                tables.append(ChunkOffsets(track_id(trak), atom.type, chunk_offsets_of(atom)))
    return tables


def descend(atom: Atom, path: tuple[str, ...]) -> Atom | None:
    """The box at `path` (types, one per level) below `atom`, the first of each type; or None."""
    for name in path:
        found = next((child for child in atom if child.type == name), None)
        if found is None:
            return None
        atom = found
    return atom


def track_id(trak: Atom) -> int:
    """The track id in the track's header (0 when it has none)."""
    tkhd = next((child for child in trak if child.type == "tkhd"), None)
    if tkhd is None or len(tkhd.payload) < 24:
        return 0
    at = 20 if tkhd.payload[0] == 1 else 12
    return int(struct.unpack_from(">I", tkhd.payload, at)[0])


def chunk_offsets_of(atom: Atom) -> array[int]:
    """The offsets in an `stco` or `co64` box (`MoovUnreadable` if it holds fewer than it says)."""
    payload = atom.payload
    if len(payload) < _ENTRIES_AT:
        raise MoovUnreadable(f"{atom.type} is too short to hold its entry count")
    (count,) = struct.unpack_from(">I", payload, _COUNT_AT)
    width = 8 if atom.type == "co64" else 4
    if len(payload) < _ENTRIES_AT + count * width:
        raise MoovUnreadable(f"{atom.type} declares {count} entries but holds fewer")
    values = array("Q" if width == 8 else "I")
    values.frombytes(payload[_ENTRIES_AT : _ENTRIES_AT + count * width])
    if _little_endian_host():
        values.byteswap()
    return array("Q", values)


def _little_endian_host() -> bool:
    return array("I", [1]).tobytes()[0] == 1


def with_chunk_offsets(moov: Atom, move: Callable[[array[int]], array[int]], *, co64: bool) -> Atom:
    """A copy of `moov` whose every chunk offset table holds `move(offsets)`, all as `co64`
    when `co64` (else each keeps its type); `OverflowError` if a value no longer fits `stco`."""
    return _rewritten(moov, move, co64)


def _rewritten(atom: Atom, move: Callable[[array[int]], array[int]], co64: bool) -> Atom:
    if atom.type in CHUNK_OFFSET_TYPES:
        return _offset_table(atom, move(chunk_offsets_of(atom)), co64 or atom.type == "co64")
    if atom.children is None:
        return atom
    return replace(atom, children=[_rewritten(child, move, co64) for child in atom])


def _offset_table(atom: Atom, offsets: array[int], as_co64: bool) -> Atom:
    if not as_co64 and offsets and max(offsets) > MAX_32:
        raise OverflowError("a chunk offset passes 2^32: the table must become co64")
    values = array("Q" if as_co64 else "I", offsets)
    if _little_endian_host():
        values.byteswap()
    header = atom.payload[:_COUNT_AT] + struct.pack(">I", len(offsets))
    return Atom("co64" if as_co64 else "stco", payload=header + values.tobytes())


def self_contained(moov: Atom) -> bool:
    """Whether every data reference says "in this file" (an `url ` entry, or QuickTime's `alis`
    as GStreamer writes it, with flag 1): a track whose media is in another file cannot be
    checked, or moved with this one. Entries that do not add up are `MoovUnreadable`."""
    for _, atom in moov.walk():
        if atom.type != "dref":
            continue
        payload = atom.payload
        if len(payload) < _ENTRIES_AT:
            return False
        for entry in parse_boxes(payload, _ENTRIES_AT, len(payload)):
            flags = int.from_bytes(entry.payload[1:4], "big") if len(entry.payload) >= 4 else 0
            if entry.type not in SELF_REFERENCE_TYPES or not flags & 1:
                return False
    return True


def boxes_named(moov: Atom, names: frozenset[str]) -> list[str]:
    """The paths (`moov/trak/.../saio`) of the boxes with one of these types."""
    return ["/".join((*path, atom.type)) for path, atom in moov.walk() if atom.type in names]
