"""The durations fragmented MP4s carry in their fragments (`moof/traf/trun`), per track: an
empty `moov` (ffmpeg's `empty_moov`) says nothing of how long the movie is."""

from __future__ import annotations

import struct

from upload_jobs.media.boxes import Box, Seekable, children_of, payload_of


def sum_fragment_ticks(
    f: Seekable, boxes: list[Box], file_size: int, trex_durations: dict[int, int]
) -> dict[int, int]:
    """Per track id, the media-timescale ticks carried by all complete moof fragments."""
    ticks: dict[int, int] = {}
    for moof in boxes:
        if moof.type != "moof" or moof.end > file_size:
            continue
        for box_type, start, end in children_of(f, moof.offset + moof.header_size, moof.end):
            if box_type == "traf":
                track_id, duration = _traf_ticks(f, start, end, trex_durations)
                ticks[track_id] = ticks.get(track_id, 0) + duration
    return ticks


def _traf_ticks(
    f: Seekable, start: int, end: int, trex_durations: dict[int, int]
) -> tuple[int, int]:
    track_id = 0
    default_duration = 0
    total = 0
    for box_type, child_start, child_end in children_of(f, start, end):
        data = payload_of(f, child_start, child_end)
        if box_type == "tfhd" and len(data) >= 8:
            flags = int.from_bytes(data[1:4], "big")
            (track_id,) = struct.unpack(">I", data[4:8])
            default_duration = trex_durations.get(track_id, 0)
            # Optional fields in flag order: base offset (8), description index (4), duration.
            at = 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
            if flags & 0x08 and len(data) >= at + 4:
                (default_duration,) = struct.unpack(">I", data[at : at + 4])
        elif box_type == "trun":
            total += _trun_ticks(data, default_duration)
    return track_id, total


def _trun_ticks(data: bytes, default_duration: int) -> int:
    if len(data) < 8:
        return 0
    flags = int.from_bytes(data[1:4], "big")
    (count,) = struct.unpack(">I", data[4:8])
    if not flags & 0x100:
        return count * default_duration
    at = 8 + (4 if flags & 0x01 else 0) + (4 if flags & 0x04 else 0)
    stride = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
    total = 0
    for _ in range(count):
        if at + 4 > len(data):
            break
        total += struct.unpack(">I", data[at : at + 4])[0]
        at += stride
    return total
