"""Box walk on real ffmpeg output and on hand-built byte sequences."""

from __future__ import annotations

import random
import struct
from pathlib import Path
from typing import Any

import pytest

from upload_jobs.errors import OptimizationFailed
from upload_jobs.media import samples
from upload_jobs.media.mp4 import NotAnMp4, read_layout


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mp4-clips")


def test_moov_at_end_mp4(ffmpeg: str, clips: Path) -> None:
    layout = read_layout(samples.make_moov_at_end_mp4(clips / "end.mp4", ffmpeg=ffmpeg))

    types = [b.type for b in layout.boxes]
    assert types.index("mdat") < types.index("moov")
    assert not layout.moov_before_mdat
    assert not layout.is_faststart
    assert not layout.fragmented
    assert not layout.truncated
    assert layout.major_brand == "isom"
    assert layout.duration_seconds == pytest.approx(2.0, abs=0.05)
    assert [(t.handler, t.fourcc) for t in layout.tracks] == [("vide", "avc1"), ("soun", "mp4a")]
    assert layout.video_tracks[0].duration_seconds == pytest.approx(2.0, abs=0.05)
    assert layout.audio_tracks[0].duration_seconds == pytest.approx(2.0, abs=0.1)
    assert layout.boxes[-1].end == layout.file_size


def test_faststart_mp4(ffmpeg: str, clips: Path) -> None:
    layout = read_layout(samples.make_faststart_mp4(clips / "fast.mp4", ffmpeg=ffmpeg))

    types = [b.type for b in layout.boxes]
    assert types.index("moov") < types.index("mdat")
    assert layout.moov_before_mdat
    assert layout.is_faststart
    assert not layout.truncated
    assert layout.duration_seconds == pytest.approx(2.0, abs=0.05)


def test_fragmented_mp4_duration_comes_from_fragments(ffmpeg: str, clips: Path) -> None:
    layout = read_layout(samples.make_fragmented_mp4(clips / "frag.mp4", ffmpeg=ffmpeg))

    assert layout.fragmented
    assert not layout.is_faststart
    assert layout.moov_before_mdat
    assert sum(b.type == "moof" for b in layout.boxes) >= 3
    # ffmpeg writes 0 in mvhd and no mehd here; the duration is summed from the trun boxes.
    assert layout.duration_seconds == pytest.approx(2.0, abs=0.05)
    assert layout.video_tracks[0].duration_seconds == pytest.approx(2.0, abs=0.01)
    assert [t.fourcc for t in layout.tracks] == ["avc1", "mp4a"]


def test_mov_with_pcm_audio(ffmpeg: str, clips: Path) -> None:
    layout = read_layout(samples.make_mov_with_pcm_audio(clips / "clip.MOV", ffmpeg=ffmpeg))

    assert layout.major_brand == "qt  "
    assert [b.type for b in layout.boxes][:4] == ["ftyp", "wide", "mdat", "moov"]
    assert layout.video_tracks[0].fourcc == "avc1"
    assert layout.audio_tracks[0].fourcc == "sowt"
    assert layout.duration_seconds == pytest.approx(2.0, abs=0.05)


def test_truncated_faststart_keeps_header_duration(ffmpeg: str, clips: Path) -> None:
    full = samples.make_faststart_mp4(clips / "whole.mp4", ffmpeg=ffmpeg)
    cut = clips / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])

    layout = read_layout(cut)

    assert layout.truncated
    missing = len(data) - len(data) // 2
    assert layout.truncation == f"box mdat declares {missing} bytes past end of file"
    assert layout.is_faststart
    assert layout.duration_seconds == pytest.approx(2.0, abs=0.05)


def test_random_bytes_are_not_an_mp4(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(random.Random(1234).randbytes(4096))

    with pytest.raises(NotAnMp4, match=r"is not an MP4/MOV file \(no ISO-BMFF boxes\)"):
        read_layout(junk)
    assert issubclass(NotAnMp4, OptimizationFailed)


def test_text_file_is_not_an_mp4(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("these are not the boxes you are looking for\n")

    with pytest.raises(NotAnMp4):
        read_layout(text)


def test_empty_file_is_not_an_mp4(tmp_path: Path) -> None:
    with pytest.raises(NotAnMp4, match="empty"):
        read_layout(samples.make_empty_file(tmp_path / "empty.mp4"))


# --- hand-built files -------------------------------------------------------------------


def box(box_type: str, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), box_type.encode("latin-1")) + payload


def full_box(box_type: str, version: int, payload: bytes) -> bytes:
    return box(box_type, bytes([version, 0, 0, 0]) + payload)


def mvhd_v1(timescale: int, duration: int) -> bytes:
    return full_box("mvhd", 1, struct.pack(">QQIQ", 0, 0, timescale, duration) + bytes(80))


def mvhd_v0(timescale: int, duration: int) -> bytes:
    return full_box("mvhd", 0, struct.pack(">IIII", 0, 0, timescale, duration) + bytes(80))


def trak(track_id: int, handler: str, fourcc: str, timescale: int, duration: int) -> bytes:
    tkhd = full_box("tkhd", 0, struct.pack(">IIIII", 0, 0, track_id, 0, 0) + bytes(60))
    mdhd = full_box("mdhd", 0, struct.pack(">IIII", 0, 0, timescale, duration) + bytes(4))
    hdlr = full_box("hdlr", 0, b"\0\0\0\0" + handler.encode() + bytes(12) + b"\0")
    entry = struct.pack(">I4s", 16, fourcc.encode("latin-1")) + bytes(8)
    stsd = full_box("stsd", 0, struct.pack(">I", 1) + entry)
    minf = box("minf", box("stbl", stsd))
    return box("trak", tkhd + box("mdia", mdhd + hdlr + minf))


FTYP = box("ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2")


def test_largesize_and_size_zero_boxes(tmp_path: Path) -> None:
    # 64-bit durations in mvhd v1 and a 64-bit box size, then an mdat running to end of file.
    moov = box("moov", mvhd_v1(1000, 5_000_000_000) + trak(1, "soun", "fLaC", 48000, 96000))
    free_large = struct.pack(">I4sQ", 1, b"free", 16 + 8) + bytes(8)
    mdat_to_eof = struct.pack(">I4s", 0, b"mdat") + bytes(100)
    path = tmp_path / "hand.mp4"
    path.write_bytes(FTYP + moov + free_large + mdat_to_eof)

    layout = read_layout(path)

    assert [(b.type, b.size, b.header_size) for b in layout.boxes] == [
        ("ftyp", len(FTYP), 8),
        ("moov", len(moov), 8),
        ("free", 24, 16),
        ("mdat", 108, 8),
    ]
    assert layout.boxes[-1].end == layout.file_size
    assert not layout.truncated
    assert layout.is_faststart
    assert layout.duration_seconds == 5_000_000.0
    assert layout.audio_tracks[0].fourcc == "fLaC"
    assert layout.audio_tracks[0].duration_seconds == 2.0


def test_largesize_mdat_past_end_of_file_is_truncated(tmp_path: Path) -> None:
    moov = box("moov", mvhd_v0(600, 1200) + trak(1, "vide", "avc1", 12800, 25600))
    mdat = struct.pack(">I4sQ", 1, b"mdat", 1 << 33) + bytes(1000)
    path = tmp_path / "cut.mp4"
    path.write_bytes(FTYP + moov + mdat)

    layout = read_layout(path)

    assert layout.truncated
    assert layout.truncation == f"box mdat declares {(1 << 33) - 1016} bytes past end of file"
    assert layout.duration_seconds == 2.0


def test_mdat_without_moov_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "unfinished.mov"
    path.write_bytes(box("wide") + box("mdat", bytes(64)))

    layout = read_layout(path)

    assert layout.truncated
    assert "no moov" in (layout.truncation or "")
    assert layout.tracks == []
    assert layout.duration_seconds is None


def test_fragmented_duration_from_mehd_when_mvhd_is_zero(tmp_path: Path) -> None:
    mehd = full_box("mehd", 0, struct.pack(">I", 4500))
    moov = box("moov", mvhd_v0(1000, 0) + trak(1, "vide", "avc1", 90000, 0) + box("mvex", mehd))
    path = tmp_path / "frag.mp4"
    path.write_bytes(FTYP + moov)

    layout = read_layout(path)

    assert layout.fragmented
    assert not layout.is_faststart
    assert layout.duration_seconds == 4.5


def test_huge_mdat_is_seeked_over_not_read(tmp_path: Path) -> None:
    # A sparse 1 GiB mdat: the walk must read only headers and the moov at the end.
    path = tmp_path / "big.mp4"
    payload = 1 << 30
    moov = box("moov", mvhd_v0(1000, 60_000) + trak(1, "vide", "avc1", 1000, 60_000))
    with path.open("wb") as f:
        f.write(FTYP + struct.pack(">I4sQ", 1, b"mdat", 16 + payload))
        f.seek(payload, 1)
        f.write(moov)

    reads: list[int] = []
    real_open = Path.open

    class CountingFile:
        def __init__(self, handle: Any) -> None:
            self._handle = handle

        def __enter__(self) -> CountingFile:
            return self

        def __exit__(self, *exc: object) -> None:
            self._handle.close()

        def read(self, size: int = -1) -> bytes:
            chunk: bytes = self._handle.read(size)
            reads.append(len(chunk))
            return chunk

        def __getattr__(self, name: str) -> Any:
            return getattr(self._handle, name)

    def counting_open(self: Path, *args: Any, **kwargs: Any) -> CountingFile:
        return CountingFile(real_open(self, *args, **kwargs))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "open", counting_open)
        layout = read_layout(path)

    assert [b.type for b in layout.boxes] == ["ftyp", "mdat", "moov"]
    assert layout.duration_seconds == 60.0
    assert not layout.truncated
    assert 0 < sum(reads) < 64 * 1024
