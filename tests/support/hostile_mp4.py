"""Hostile MP4 files, built from a real clip whose moov is at its end: indexes nested past any
recording's, with millions of boxes, with tables that say more than they hold, with a last sample
running past its media box. What the fuzzer found, kept as files the tests make."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

from tests.support.mp4_files import box, top_level

__all__ = ["box", "top_level"]
from upload_jobs.media.moov import Atom, parse_moov


def with_moov(clip: Path, target: Path, moov: bytes) -> Path:
    """The clip (moov last) with its moov replaced by `moov`, whose chunk offsets still hold."""
    boxes = top_level(clip)
    assert boxes[-1][0] == "moov", "the clip's moov must be its last box"
    target.write_bytes(b"".join(data for _, data in boxes[:-1]) + moov)
    return target


def moov_atom(clip: Path) -> Atom:
    """The clip's moov as a tree."""
    return parse_moov(top_level(clip)[-1][1])


def with_moov_appended(clip: Path, target: Path, extra: bytes) -> Path:
    """The clip with `extra` (whole boxes) appended inside its moov."""
    moov = top_level(clip)[-1][1]
    return with_moov(clip, target, box("moov", moov[8:] + extra))


def nested(box_type: str, depth: int, leaf: bytes = b"") -> bytes:
    """`depth` boxes of `box_type`, each the only child of the one above."""
    data = leaf
    for _ in range(depth):
        data = box(box_type, data)
    return data


def nested_traks(clip: Path, target: Path, depth: int = 1000) -> Path:
    """1,000 `trak` boxes nested in one another beside the real tracks (ffmpeg plays it)."""
    return with_moov_appended(clip, target, nested("trak", depth))


def deep_and_wide(clip: Path, target: Path, levels: int = 300, leaves: int = 11_800) -> Path:
    """`levels` nested `udta` boxes holding `leaves` small boxes spread over the levels: what
    took the recursive walk nodes x depth^2."""
    per_level = max(1, leaves // levels)
    data = b""
    for _ in range(levels):
        data = box("udta", box("free", b"") * per_level + data)
    return with_moov_appended(clip, target, data)


def many_small_boxes(clip: Path, target: Path, megabytes: float = 16.8) -> Path:
    """A moov holding `megabytes` of empty 8-byte boxes (two million of them) in a `udta`."""
    count = int(megabytes * 2**20) // 8
    return with_moov_appended(clip, target, box("udta", box("free", b"") * count))


def with_edited_box(
    clip: Path, target: Path, box_type: str, edit: Callable[[bytes], bytes]
) -> Path:
    """The clip with the payload of its first `box_type` box inside moov replaced by
    `edit(payload)`, every box above it resized to fit."""
    moov = moov_atom(clip)
    found = next(atom for _, atom in moov.walk() if atom.type == box_type)
    found.payload = edit(found.payload)
    return with_moov(clip, target, moov.serialize())


def dref_entry_larger_than_its_box(clip: Path, target: Path) -> Path:
    """A data reference whose entry declares more bytes than the `dref` holds."""

    def grow_entry(payload: bytes) -> bytes:
        size = struct.unpack_from(">I", payload, 8)[0]
        return payload[:8] + struct.pack(">I", size + 64) + payload[12:]

    return with_edited_box(clip, target, "dref", grow_entry)


def stray_bytes_after_dref_entries(clip: Path, target: Path) -> Path:
    """Three bytes after the data reference's entries, too few for a box."""
    return with_edited_box(clip, target, "dref", lambda payload: payload + b"\0\0\0")


def chunk_offsets_counted_too_many(clip: Path, target: Path) -> Path:
    """A chunk offset table declaring 1,000 more entries than it holds."""

    def overcount(payload: bytes) -> bytes:
        count = struct.unpack_from(">I", payload, 4)[0]
        return payload[:4] + struct.pack(">I", count + 1000) + payload[8:]

    return with_edited_box(clip, target, "stco", overcount)


def last_sample_past_its_media(clip: Path, target: Path) -> Path:
    """The first track's last sample declared 4 KiB longer than the media box has room for:
    its chunk starts inside `mdat`, its bytes run past the end."""
    layout_boxes = top_level(clip)
    media_end = sum(len(data) for kind, data in layout_boxes[:-1])  # mdat is just before moov

    def lengthen_last(payload: bytes) -> bytes:
        uniform, count = struct.unpack_from(">II", payload, 4)
        assert uniform == 0 and count > 0
        at = 12 + 4 * (count - 1)
        (last,) = struct.unpack_from(">I", payload, at)
        return payload[:at] + struct.pack(">I", last + media_end + 4096) + payload[at + 4 :]

    return with_edited_box(clip, target, "stsz", lengthen_last)


# Every hostile source, by name: how it is made from the clip.
HOSTILE_SOURCES: dict[str, Callable[[Path, Path], Path]] = {
    "1,000 nested trak": nested_traks,
    "300 levels, 11,800 leaves": deep_and_wide,
    "16.8 MB of 8-byte boxes": many_small_boxes,
    "dref entry larger than its box": dref_entry_larger_than_its_box,
    "stray bytes after dref entries": stray_bytes_after_dref_entries,
    "stco counts too many": chunk_offsets_counted_too_many,
    "last sample past its mdat": last_sample_past_its_media,
}
