"""MP4 files in the layouts recorders leave and qt-faststart trips on, built from real ffmpeg
clips: boxes around `moov`, `co64` tables, two `mdat` boxes, a `moov` between them, an edit list
with a start offset, two audio tracks, offsets just under 4 GiB in a sparse file.

Each builder moves boxes and patches chunk offsets with the product's `moov` model; a test proves
the built file sound with ffmpeg itself (`framemd5` equal to the clip it was made from) before
it trusts it as a source.
"""

from __future__ import annotations

import struct
import subprocess
from array import array
from pathlib import Path

from upload_jobs.media.moov import Atom, chunk_offset_tables, parse_moov, with_chunk_offsets
from upload_jobs.media.mp4 import read_layout

FOUR_GIB = 2**32


def box(box_type: str, payload: bytes) -> bytes:
    """A whole box: 32-bit size, type, payload."""
    return struct.pack(">I4s", 8 + len(payload), box_type.encode("latin-1")) + payload


def top_level(path: Path) -> list[tuple[str, bytes]]:
    """The file's top-level boxes as (type, the box's bytes)."""
    data = path.read_bytes()
    return [(b.type, data[b.offset : b.end]) for b in read_layout(path).boxes]


def framemd5(ffmpeg: str, path: Path) -> list[str]:
    """Every packet's checksum and timestamps (video and audio), as ffmpeg demuxes the file."""
    result = subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-i", f"file:{path}", "-map", "0", "-c", "copy",
         "-f", "framemd5", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [line for line in result.stdout.splitlines() if not line.startswith("#software")]


def moov_of(boxes: list[tuple[str, bytes]]) -> Atom:
    """The parsed moov among the boxes."""
    return parse_moov(next(data for kind, data in boxes if kind == "moov"))


def moved(moov: Atom, shift: int, from_offset: int = 0, co64: bool = False) -> bytes:
    """The moov with every chunk offset at or past `from_offset` moved by `shift`."""

    def move(offsets: array[int]) -> array[int]:
        return array("Q", [o + shift if o >= from_offset else o for o in offsets])

    return with_chunk_offsets(moov, move, co64=co64).serialize()


def with_boxes_around_moov(clip: Path, target: Path) -> Path:
    """`ftyp free mdat wide uuid moov free`: moov neither last nor next to mdat."""
    boxes = dict(top_level(clip))
    uuid_box = box("uuid", bytes(range(16)) + b"recorder notes")
    parts = [boxes["ftyp"], boxes["free"], boxes["mdat"], box("wide", b""), uuid_box]
    target.write_bytes(b"".join([*parts, boxes["moov"], box("free", b"\0" * 64)]))
    return target


def with_co64(clip: Path, target: Path) -> Path:
    """The clip with its chunk offset tables as co64 (moov still at the end)."""
    boxes = top_level(clip)
    co64_moov = moved(moov_of(boxes), 0, co64=True)
    target.write_bytes(b"".join(co64_moov if kind == "moov" else data for kind, data in boxes))
    return target


def with_two_mdats(clip: Path, target: Path, *, moov_between: bool = False) -> Path:
    """The clip's media split at a chunk boundary into two mdat boxes (`moov_between`: with the
    moov between them, as a recorder that appends after finalizing leaves it)."""
    boxes = dict(top_level(clip))
    layout = read_layout(clip)
    mdat = next(b for b in layout.boxes if b.type == "mdat")
    moov = moov_of(list(boxes.items()))
    chunks = sorted(o for table in chunk_offset_tables(moov) for o in table.offsets)
    split = chunks[len(chunks) // 2]
    payload = boxes["mdat"][mdat.header_size :]
    cut = split - (mdat.offset + mdat.header_size)
    first, second = box("mdat", payload[:cut]), box("mdat", payload[cut:])
    head = boxes["ftyp"] + boxes["free"]
    if not moov_between:
        new_moov = moved(moov, 8, from_offset=split)  # the second header comes before them
        target.write_bytes(head + first + second + new_moov)
        return target
    # moov between: the second mdat's chunks sit after moov; its size depends on nothing moved.
    size = len(moved(moov, 0))
    new_moov = moved(moov, 8 + size, from_offset=split)
    target.write_bytes(head + first + new_moov + second)
    return target


def with_start_offset(clip: Path, target: Path, ffmpeg: str) -> Path:
    """A copy that starts 0.5 s in, past a keyframe: an edit list (elst) with a media start."""
    subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-y", "-ss", "0.5", "-i", f"file:{clip}", "-c", "copy",
         "-f", "mp4", f"file:{target}"],
        check=True,
    )  # fmt: skip
    return target


def two_audio_tracks(target: Path, ffmpeg: str) -> Path:
    """H.264 with two AAC tracks (two languages), moov at the end."""
    subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=2",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
         "-f", "lavfi", "-i", "sine=frequency=660:duration=2",
         "-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "libx264", "-preset", "ultrafast",
         "-g", "10", "-c:a", "aac", "-b:a", "64k", "-metadata:s:a:0", "language=eng",
         "-metadata:s:a:1", "language=fra", "-f", "mp4", f"file:{target}"],
        check=True,
    )  # fmt: skip
    return target


def sparse_near_four_gib(clip: Path, target: Path) -> tuple[Path, int]:
    """The clip's media placed just under 4 GiB into a sparse file (a hole before it, in a
    64-bit mdat), moov at the end: its stco offsets fit, but not once moov moves in front.
    Returns the file and how far the media moved; only the clip's own bytes are on disk."""
    boxes = dict(top_level(clip))
    layout = read_layout(clip)
    mdat = next(b for b in layout.boxes if b.type == "mdat")
    payload = boxes["mdat"][mdat.header_size :]
    head = boxes["ftyp"] + boxes["free"]
    # 64-bit header (16 bytes), then the hole, then the media ending 1 KiB under 4 GiB.
    media_at = FOUR_GIB - 1024 - len(payload)
    hole = media_at - len(head) - 16
    shift = media_at - (mdat.offset + mdat.header_size)
    new_moov = moved(moov_of(list(boxes.items())), shift)
    with target.open("wb") as out:
        out.write(head + struct.pack(">I4sQ", 1, b"mdat", 16 + hole + len(payload)))
        out.seek(hole, 1)  # never written: a hole
        out.write(payload + new_moov)
    return target, shift


def noisy_clip(target: Path, ffmpeg: str, *, seconds: float = 3.0, mov_pcm: bool = False) -> Path:
    """A clip of a few MB a second (lossless H.264 of noise): large enough for a multipart upload
    of 5 MiB parts in a few seconds of video. `mov_pcm`: QuickTime with PCM, which ffmpeg remuxes;
    else MP4 with AAC and moov at the end, which moves in process."""
    audio = ["-c:a", "pcm_s16le", "-f", "mov"] if mov_pcm else ["-c:a", "aac", "-f", "mp4"]
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size=320x240:rate=25:duration={seconds},noise=alls=100:allf=t",
         "-f", "lavfi", "-i", f"sine=duration={seconds}", "-c:v", "libx264", "-preset",
         "ultrafast", "-qp", "0", "-g", "10", *audio, f"file:{target}"],
        check=True,
    )  # fmt: skip
    return target
