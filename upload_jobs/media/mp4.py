"""ISO-BMFF (MP4 / QuickTime MOV) top-level box walk: layout, duration, tracks, truncation.

Only box headers and the small metadata boxes are read; media payload (`mdat`) is always
seeked over, so inspecting a multi-gigabyte recording costs a few dozen small reads.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from upload_jobs.errors import OptimizationFailed
from upload_jobs.media.boxes import Box, Seekable, children_of, payload_of, unpack_header
from upload_jobs.media.fragments import sum_fragment_ticks

# Box types a real MP4/MOV can start with (QuickTime files may open with wide/mdat/pnot).
PLAUSIBLE_FIRST_BOXES = frozenset({"ftyp", "moov", "mdat", "free", "skip", "wide", "pnot"})

HANDLER_VIDEO = "vide"
HANDLER_AUDIO = "soun"

# 32-bit durations of all ones mean "unknown" in mvhd/tkhd/mdhd.
_UNKNOWN_32 = 0xFFFFFFFF
_UNKNOWN_64 = 0xFFFFFFFFFFFFFFFF


class NotAnMp4(OptimizationFailed):
    """The file does not start with ISO-BMFF boxes, so it is neither MP4 nor MOV."""

    fallback_kind = "not_an_mp4"

    def __init__(self, path: Path, detail: str = "no ISO-BMFF boxes") -> None:
        super().__init__(f"{path} is not an MP4/MOV file ({detail})")
        self.path = path


@dataclass(frozen=True)
class Track:
    """One `trak`: its handler (`vide`, `soun`, ...), sample-entry fourcc and duration."""

    track_id: int
    handler: str
    fourcc: str | None
    duration_seconds: float | None
    # ISO 639-2 code from mdhd ("eng", "und"); None when unreadable, unspecified, or a
    # QuickTime code other than 0 (English), which players map with tables of their own.
    language: str | None = None
    # The track header's display matrix (rotation, flips), nine 32-bit fixed-point values.
    matrix: tuple[int, ...] | None = None
    # The track header's width and height in pixels (0 for audio), before the matrix rotates.
    width: int = 0
    height: int = 0

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as shown: swapped when the matrix turns the picture a quarter."""
        quarter_turn = self.matrix is not None and self.matrix[0] == 0 and self.matrix[1] != 0
        return (self.height, self.width) if quarter_turn else (self.width, self.height)


@dataclass(frozen=True)
class Mp4Layout:
    """What the box walk learned about one file."""

    path: Path
    file_size: int
    boxes: list[Box]
    major_brand: str | None
    moov_before_mdat: bool
    fragmented: bool
    truncation: str | None
    duration_seconds: float | None
    tracks: list[Track] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        """True when a box runs past end of file or the index (moov) is missing."""
        return self.truncation is not None

    @property
    def is_faststart(self) -> bool:
        """True when a player can start before downloading everything: moov first, one piece."""
        return self.moov_before_mdat and not self.fragmented

    @property
    def video_tracks(self) -> list[Track]:
        """Tracks whose handler is video, in file order (ffmpeg's `0:V` order)."""
        return [t for t in self.tracks if t.handler == HANDLER_VIDEO]

    @property
    def audio_tracks(self) -> list[Track]:
        """Tracks whose handler is sound, in file order (ffmpeg's `0:a` order)."""
        return [t for t in self.tracks if t.handler == HANDLER_AUDIO]


def starts_like_mp4(header: bytes) -> bool:
    """Whether the first bytes of a file are a plausible first ISO-BMFF box (MP4/MOV)."""
    if len(header) < 8:
        return False
    size, box_type = unpack_header(header)
    # Size 0 means "to the end of the file" and 1 "a 64-bit size follows": both are legal.
    return box_type in PLAUSIBLE_FIRST_BOXES and (size in (0, 1) or size >= 8)


def read_layout(path: Path) -> Mp4Layout:
    """Walk the top-level boxes of an MP4/MOV file without reading media payload.

    Raises NotAnMp4 for empty files and files that do not start with a plausible box.
    """
    with path.open("rb") as f:
        return read_layout_of(f, os.fstat(f.fileno()).st_size, path)


def read_layout_of(f: Seekable, file_size: int, path: Path) -> Mp4Layout:
    """`read_layout` of the `file_size` bytes of a seekable stream (`path` names it in errors):
    an upload body made in memory is checked the way a file is."""
    if file_size == 0:
        raise NotAnMp4(path, "the file is empty")
    boxes, truncation = _walk_top_level(f, path, file_size)

    moov = next((b for b in boxes if b.type == "moov" and b.end <= file_size), None)
    mdat = next((b for b in boxes if b.type == "mdat"), None)
    if truncation is None and moov is None and mdat is not None:
        truncation = "no moov box (the index) found: the recording was never finalized"

    movie = _read_moov(f, moov) if moov is not None else _Movie()
    fragment_ticks = sum_fragment_ticks(f, boxes, file_size, movie.trex_durations)
    major_brand = _major_brand(f, boxes)

    fragmented = movie.has_mvex or any(b.type == "moof" for b in boxes)
    tracks = [_finish_track(t, fragment_ticks.get(t.track_id, 0)) for t in movie.tracks]
    moov_offset = moov.offset if moov is not None else None
    return Mp4Layout(
        path=path,
        file_size=file_size,
        boxes=boxes,
        major_brand=major_brand,
        moov_before_mdat=moov_offset is not None and (mdat is None or moov_offset < mdat.offset),
        fragmented=fragmented,
        truncation=truncation,
        duration_seconds=_movie_duration(movie, tracks, fragmented),
        tracks=tracks,
    )


def _walk_top_level(f: Seekable, path: Path, file_size: int) -> tuple[list[Box], str | None]:
    boxes: list[Box] = []
    offset = 0
    while offset < file_size:
        f.seek(offset)
        header = f.read(16)
        first = not boxes
        if len(header) < 8:
            if first:
                raise NotAnMp4(path, "too short to hold a box header")
            return boxes, f"{len(header)} stray bytes at offset {offset}, too short for a box"
        size, box_type = unpack_header(header)
        header_size = 8
        if size == 1:
            if len(header) < 16:
                return boxes, f"box {box_type} at offset {offset} is cut inside its header"
            (size,) = struct.unpack(">Q", header[8:16])
            header_size = 16
        elif size == 0:
            size = file_size - offset  # "extends to end of file", legal for the last box
        if first and (box_type not in PLAUSIBLE_FIRST_BOXES or size < header_size):
            raise NotAnMp4(path)
        if size < header_size:
            return boxes, f"box {box_type} at offset {offset} declares an impossible size {size}"
        boxes.append(Box(box_type, offset, size, header_size))
        if offset + size > file_size:
            missing = offset + size - file_size
            return boxes, f"box {box_type} declares {missing} bytes past end of file"
        offset += size
    return boxes, None


@dataclass
class _RawTrack:
    track_id: int = 0
    handler: str = ""
    fourcc: str | None = None
    timescale: int = 0
    media_duration: int | None = None
    language: str | None = None
    matrix: tuple[int, ...] | None = None
    width: int = 0
    height: int = 0


@dataclass
class _Movie:
    timescale: int = 0
    duration: int | None = None
    fragment_duration: int | None = None
    has_mvex: bool = False
    tracks: list[_RawTrack] = field(default_factory=list)
    trex_durations: dict[int, int] = field(default_factory=dict)


def _read_moov(f: Seekable, moov: Box) -> _Movie:
    movie = _Movie()
    for box_type, start, end in children_of(f, moov.offset + moov.header_size, moov.end):
        if box_type == "mvhd":
            movie.timescale, movie.duration = _timescale_and_duration(payload_of(f, start, end))
        elif box_type == "trak":
            movie.tracks.append(_read_trak(f, start, end))
        elif box_type == "mvex":
            movie.has_mvex = True
            _read_mvex(f, start, end, movie)
    return movie


def _timescale_and_duration(data: bytes) -> tuple[int, int | None]:
    """Parse the shared head of mvhd/mdhd: version, times, timescale, duration."""
    try:
        if data[0] == 1:
            timescale, duration = struct.unpack(">IQ", data[20:32])
            return timescale, None if duration == _UNKNOWN_64 else duration
        timescale, duration = struct.unpack(">II", data[12:20])
        return timescale, None if duration == _UNKNOWN_32 else duration
    except (IndexError, struct.error):
        return 0, None


def _read_trak(f: Seekable, start: int, end: int) -> _RawTrack:
    track = _RawTrack()
    for box_type, child_start, child_end in children_of(f, start, end):
        if box_type == "tkhd":
            data = payload_of(f, child_start, child_end)
            id_at, matrix_at = (20, 52) if data[:1] == b"\x01" else (12, 40)
            if len(data) >= id_at + 4:
                (track.track_id,) = struct.unpack(">I", data[id_at : id_at + 4])
            if len(data) >= matrix_at + 36:
                track.matrix = struct.unpack(">9i", data[matrix_at : matrix_at + 36])
            if len(data) >= matrix_at + 44:  # 16.16 fixed point
                width, height = struct.unpack(">II", data[matrix_at + 36 : matrix_at + 44])
                track.width, track.height = width >> 16, height >> 16
        elif box_type == "mdia":
            _read_mdia(f, child_start, child_end, track)
    return track


def _read_mdia(f: Seekable, start: int, end: int, track: _RawTrack) -> None:
    for box_type, child_start, child_end in children_of(f, start, end):
        if box_type == "mdhd":
            data = payload_of(f, child_start, child_end)
            track.timescale, track.media_duration = _timescale_and_duration(data)
            track.language = _language(data)
        elif box_type == "hdlr":
            # QuickTime also puts a data-handler hdlr in minf; the mdia one names the media.
            data = payload_of(f, child_start, child_end)
            if len(data) >= 12:
                track.handler = data[8:12].decode("latin-1")
        elif box_type == "minf":
            for minf_type, minf_start, minf_end in children_of(f, child_start, child_end):
                if minf_type == "stbl":
                    track.fourcc = _first_sample_entry(f, minf_start, minf_end)


def _first_sample_entry(f: Seekable, start: int, end: int) -> str | None:
    for box_type, child_start, child_end in children_of(f, start, end):
        if box_type == "stsd":
            f.seek(child_start)
            data = f.read(min(16, child_end - child_start))
            if len(data) == 16 and struct.unpack(">I", data[4:8])[0] > 0:
                return data[12:16].decode("latin-1")
    return None


def _language(mdhd: bytes) -> str | None:
    """The packed language after mdhd's times: three letters of 5 bits each (ISO 639-2)."""
    at = 32 if mdhd[:1] == b"\x01" else 20
    if len(mdhd) < at + 2:
        return None
    (code,) = struct.unpack(">H", mdhd[at : at + 2])
    if code == 0:
        return "eng"  # QuickTime's language code 0 is English
    if code < 0x400:
        return None
    letters = [code >> shift & 0x1F for shift in (10, 5, 0)]
    if not all(1 <= letter <= 26 for letter in letters):
        return None  # 0x7FFF and the like: QuickTime's "unspecified"
    return bytes(letter + 0x60 for letter in letters).decode("latin-1")


def _read_mvex(f: Seekable, start: int, end: int, movie: _Movie) -> None:
    for box_type, child_start, child_end in children_of(f, start, end):
        data = payload_of(f, child_start, child_end)
        if box_type == "mehd" and len(data) >= 8:
            if data[0] == 1 and len(data) >= 12:
                (movie.fragment_duration,) = struct.unpack(">Q", data[4:12])
            else:
                (movie.fragment_duration,) = struct.unpack(">I", data[4:8])
        elif box_type == "trex" and len(data) >= 16:
            track_id, _, default_duration = struct.unpack(">III", data[4:16])
            movie.trex_durations[track_id] = default_duration


def _finish_track(raw: _RawTrack, fragment_ticks: int) -> Track:
    duration: float | None = None
    if raw.timescale > 0 and (raw.media_duration is not None or fragment_ticks):
        duration = ((raw.media_duration or 0) + fragment_ticks) / raw.timescale
    return Track(
        raw.track_id, raw.handler, raw.fourcc, duration, raw.language, raw.matrix,
        raw.width, raw.height,
    )  # fmt: skip


def _movie_duration(movie: _Movie, tracks: list[Track], fragmented: bool) -> float | None:
    if movie.timescale <= 0:
        return None
    header = (movie.duration or 0) / movie.timescale
    if not fragmented:
        return header if movie.duration else None
    if movie.fragment_duration:
        return movie.fragment_duration / movie.timescale
    # Fragmented files usually carry 0 in mvhd (empty_moov) and often no mehd; the fragments
    # themselves are the only record of how long the movie is.
    track_durations = [t.duration_seconds for t in tracks if t.duration_seconds]
    longest = max([header, *track_durations])
    return longest if longest > 0 else None


def _major_brand(f: Seekable, boxes: list[Box]) -> str | None:
    ftyp = next((b for b in boxes if b.type == "ftyp"), None)
    if ftyp is None or ftyp.size < ftyp.header_size + 4:
        return None
    f.seek(ftyp.offset + ftyp.header_size)
    return f.read(4).decode("latin-1")
