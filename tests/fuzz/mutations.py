"""Structure-aware mutations of an MP4: each one aims at a box (its size, its type, a table's
entry count, its nesting) so that most mutants still parse far enough to reach deep code.

A mutation is three integers, so hypothesis and atheris both draw them: which kind, which box,
which value. Applying the same seed and mutations gives the same bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Boxes whose payload is boxes: the walk below opens them to find targets at every depth.
OPENED = frozenset(
    {"moov", "trak", "mdia", "minf", "stbl", "udta", "dinf", "edts", "moof", "traf", "mvex"}
)
# Full boxes whose entry count follows version and flags.
COUNTED = frozenset(
    {"stco", "co64", "stsz", "stsc", "stts", "ctts", "stss", "dref", "stsd", "elst"}
)
RENAMES = ("trak", "udta", "moov", "mdat", "stco", "co64", "stsz", "stz2", "dref", "free", "cmov")
INTERESTING_32 = (0, 1, 7, 8, 9, 15, 16, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)
KINDS = ("size", "count", "rename", "nest", "duplicate", "truncate", "overwrite", "flip")


@dataclass(frozen=True)
class BoxAt:
    """A box found in the file: where, its header size, its declared size, type and depth."""

    offset: int
    header: int
    size: int
    type: str
    depth: int


def boxes_in(data: bytes) -> list[BoxAt]:
    """Every box a walk can find, opening the containers in `OPENED` (iteratively)."""
    found: list[BoxAt] = []
    pending = [(0, len(data), 0)]
    while pending and len(found) < 10_000:
        start, end, depth = pending.pop()
        offset = start
        while offset + 8 <= end:
            size, raw = struct.unpack_from(">I4s", data, offset)
            header = 8
            if size == 1 and offset + 16 <= end:
                (size,) = struct.unpack_from(">Q", data, offset + 8)
                header = 16
            elif size == 0:
                size = end - offset
            if size < header or offset + size > end:
                break
            kind = raw.decode("latin-1")
            found.append(BoxAt(offset, header, size, kind, depth))
            if kind in OPENED and depth < 40:
                pending.append((offset + header, offset + size, depth + 1))
            offset += size
    return found


def mutate(seed: bytes, mutations: list[tuple[int, int, int]]) -> bytes:
    """`seed` with each (kind, box, value) mutation applied in turn."""
    data = seed
    for kind, which, value in mutations:
        data = _apply(data, KINDS[kind % len(KINDS)], which, value)
    return data


def _apply(data: bytes, kind: str, which: int, value: int) -> bytes:
    boxes = boxes_in(data)
    if not boxes or not data:
        return data
    target = boxes[which % len(boxes)]
    at, end = target.offset, target.offset + target.size
    if kind == "size":
        sizes = (*INTERESTING_32, target.size - 1, target.size + 1, target.size * 2, value)
        return _put32(data, at, sizes[value % len(sizes)] & 0xFFFFFFFF)
    if kind == "count":
        counted = [b for b in boxes if b.type in COUNTED] or [target]
        box = counted[which % len(counted)]
        values = (*INTERESTING_32, value & 0xFFFFFFFF)
        return _put32(data, box.offset + box.header + 4, values[value % len(values)])
    if kind == "rename":
        name = RENAMES[value % len(RENAMES)].encode("latin-1")
        return data[: at + 4] + name + data[at + 8 :]
    if kind == "nest":  # wrap the box in `value % 64` more of its own kind, sizes kept right
        wrapped = data[at:end]
        for _ in range(value % 64):
            wrapped = struct.pack(">I", 8 + len(wrapped)) + data[at + 4 : at + 8] + wrapped
        return data[:at] + wrapped + data[end:]
    if kind == "duplicate":
        return data[:end] + data[at:end] + data[end:]
    if kind == "truncate":
        return data[: value % (len(data) + 1)]
    if kind == "overwrite":
        offset = at + target.header + value % max(1, target.size - target.header)
        return _put32(data, offset, INTERESTING_32[which % len(INTERESTING_32)])
    position = value % len(data)  # flip
    return data[:position] + bytes([data[position] ^ (1 << (which % 8))]) + data[position + 1 :]


def _put32(data: bytes, offset: int, value: int) -> bytes:
    if offset + 4 > len(data):
        return data
    return data[:offset] + struct.pack(">I", value) + data[offset + 4 :]
