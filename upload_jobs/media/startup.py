"""What a player must fetch before it can show the first frame of an MP4: the startup cost that
moving `moov` to the front buys down (README "Startup cost").

A player needs the index (`moov`) and the first video sample's chunk before it can decode a frame.
Reading the file in order from byte 0, that is everything through the end of `moov` or of that
chunk, whichever lies further: `startup_bytes`. For `moov` at the end this is nearly the whole
file; a browser avoids that with range requests, at the cost of round trips: it reads from
byte 0 until it meets `mdat`, jumps to `moov` near the end, then comes back for the first chunk
(three requests, where a faststart file needs one). A fragmented file starts with its first
fragment (`moof` and the `mdat` after it), in one request.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from upload_jobs.byte_sizes import format_bytes
from upload_jobs.errors import OptimizationFailed
from upload_jobs.media.boxes import Box, Seekable
from upload_jobs.media.moov import Atom, MoovUnreadable, descend, parse_moov
from upload_jobs.media.mp4 import HANDLER_VIDEO, Mp4Layout, read_layout_of
from upload_jobs.storage.upload_body import UploadBody

# An index this large is no recording's (a 10-hour one holds a few tens of MB).
_MAX_MOOV_BYTES = 256 * 1024 * 1024
_SAMPLE_TABLE_PATH = ("mdia", "minf", "stbl")


@dataclass(frozen=True)
class StartupCost:
    """The bytes and requests a player needs before the first frame, and where `moov` lies."""

    startup_bytes: int
    moov_offset: int
    moov_bytes: int
    range_requests: int

    @property
    def moov_first(self) -> bool:
        """Whether the index comes before the media, so one request from byte 0 suffices."""
        return self.range_requests == 1


def startup_cost(path: Path, layout: Mp4Layout | None = None) -> StartupCost | None:
    """The startup cost of the MP4 at `path` (walked unless its `layout` is given); None when it
    cannot start at all (no whole index,
    a first chunk past the end, no tracks) or is not an MP4 (`OSError` when it cannot be read).
    A file cut short after its first chunk still starts: players play what is there."""
    with path.open("rb") as f:
        return startup_cost_of(f, os.fstat(f.fileno()).st_size, path, layout)


def startup_cost_of(
    f: Seekable, file_size: int, path: Path, layout: Mp4Layout | None = None
) -> StartupCost | None:
    """`startup_cost` of the `file_size` bytes of a seekable stream, such as an upload body
    made in memory (`path` names it in errors), walked unless its `layout` is given."""
    if layout is None or layout.file_size != file_size:
        try:
            layout = read_layout_of(f, file_size, path)
        except OptimizationFailed:  # not an MP4: no player starts it
            return None
    moov = next((b for b in layout.boxes if b.type == "moov" and b.end <= file_size), None)
    if moov is None or moov.size > _MAX_MOOV_BYTES:
        return None
    if layout.fragmented:
        return _fragmented_cost(layout, moov)
    f.seek(moov.offset)
    try:
        first_chunk = _first_chunk(parse_moov(f.read(moov.size)))
    except (MoovUnreadable, struct.error, IndexError):
        return None
    if first_chunk is None:
        return None
    chunk_offset, chunk_bytes = first_chunk
    startup = max(moov.end, chunk_offset + chunk_bytes)
    if startup > file_size:
        return None  # cut off before its first frame
    first_media = min((box.offset for box in layout.boxes if box.type == "mdat"), default=None)
    moov_first = first_media is None or moov.offset < first_media
    return StartupCost(startup, moov.offset, moov.size, 1 if moov_first else 3)


def _fragmented_cost(layout: Mp4Layout, moov: Box) -> StartupCost | None:
    boxes = layout.boxes
    first_moof = next((i for i, box in enumerate(boxes) if box.type == "moof"), None)
    if first_moof is None:
        return None  # an mvex promising fragments that never came
    first_mdat = next((box for box in boxes[first_moof:] if box.type == "mdat"), None)
    if first_mdat is None or first_mdat.end > layout.file_size:
        return None
    return StartupCost(max(moov.end, first_mdat.end), moov.offset, moov.size, 1)


def _first_chunk(moov: Atom) -> tuple[int, int] | None:
    """The offset and size of the first chunk of the first video track (else the first track)."""
    tracks = [child for child in moov if child.type == "trak"]
    tracks.sort(key=lambda trak: _handler(trak) != HANDLER_VIDEO)  # stable: video first
    for trak in tracks:
        stbl = descend(trak, _SAMPLE_TABLE_PATH)
        if stbl is None:
            continue
        boxes = {child.type: child.payload for child in stbl if child.children is None}
        offsets = boxes.get("stco") or boxes.get("co64")
        if offsets is None or "stsz" not in boxes or "stsc" not in boxes:
            continue
        if struct.unpack_from(">I", offsets, 4)[0] == 0:
            continue  # a track with no samples
        offset_format = ">Q" if "co64" in boxes else ">I"
        (offset,) = struct.unpack_from(offset_format, offsets, 8)
        samples = _samples_in_first_chunk(boxes["stsc"])
        return offset, _first_sample_bytes(boxes["stsz"], samples)
    return None


def _handler(trak: Atom) -> str:
    mdia = descend(trak, ("mdia",))
    hdlr = next((child for child in mdia or [] if child.type == "hdlr"), None)
    return hdlr.payload[8:12].decode("latin-1") if hdlr and len(hdlr.payload) >= 12 else ""


def _samples_in_first_chunk(stsc: bytes) -> int:
    # stsc: version/flags, count, then (first chunk, samples per chunk, description) runs;
    # the first run starts at chunk 1 and says how many samples it holds.
    (count,) = struct.unpack_from(">I", stsc, 4)
    return int(struct.unpack_from(">I", stsc, 12)[0]) if count else 1


def _first_sample_bytes(stsz: bytes, samples: int) -> int:
    # stsz: version/flags, one size for every sample (or 0), the count, then the sizes.
    uniform, count = struct.unpack_from(">II", stsz, 4)
    samples = max(1, min(samples, count))
    if uniform:
        return int(uniform * samples)
    return sum(struct.unpack_from(f">{samples}I", stsz, 12))


def startup_cost_of_body(body: UploadBody, layout: Mp4Layout | None = None) -> StartupCost | None:
    """`startup_cost` of what an upload sends (a file, or a source with its index moved)."""
    with body.open() as reader:
        return startup_cost_of(reader, body.size, body.path, layout)


def describe_startup(before: StartupCost | None, after: StartupCost | None) -> str:
    """`6.10 MB → 41.3 KB before the first frame (3 requests → 1)`, or what is unknown."""
    if after is None:
        return "unknown: what went up has no index a player can read"
    if before is None:
        return f"{_describe(after)} before the first frame (the source's is unknown)"
    if before == after:
        return f"{_describe(after)} before the first frame, as the source"
    return (
        f"{format_bytes(before.startup_bytes)} → {format_bytes(after.startup_bytes)} before the "
        f"first frame ({_requests(before.range_requests)} → {after.range_requests})"
    )


def _describe(cost: StartupCost) -> str:
    return f"{format_bytes(cost.startup_bytes)} ({_requests(cost.range_requests)})"


def _requests(count: int) -> str:
    return f"{count} request{'s' if count != 1 else ''}"
