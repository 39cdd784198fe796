"""Each sample maker produces the layout its name promises."""

from __future__ import annotations

from pathlib import Path

import pytest

from upload_jobs.media import samples
from upload_jobs.media.mp4 import NotAnMp4, read_layout


def test_moov_at_end_is_ffmpeg_default_layout(ffmpeg: str, tmp_path: Path) -> None:
    layout = read_layout(samples.make_moov_at_end_mp4(tmp_path / "a.mp4", ffmpeg=ffmpeg))

    assert [b.type for b in layout.boxes] == ["ftyp", "free", "mdat", "moov"]
    assert not layout.moov_before_mdat
    assert [t.fourcc for t in layout.tracks] == ["avc1", "mp4a"]


def test_faststart_and_seconds(ffmpeg: str, tmp_path: Path) -> None:
    path = samples.make_faststart_mp4(tmp_path / "b.mp4", ffmpeg=ffmpeg, seconds=1.0)
    layout = read_layout(path)

    assert layout.is_faststart
    assert layout.duration_seconds == pytest.approx(1.0, abs=0.05)


def test_fragmented_has_a_fragment_per_keyframe_group(ffmpeg: str, tmp_path: Path) -> None:
    layout = read_layout(samples.make_fragmented_mp4(tmp_path / "c.mp4", ffmpeg=ffmpeg))

    assert layout.fragmented
    # 2 s at 25 fps with a keyframe every 10 frames: 5 keyframes, one fragment each.
    assert sum(b.type == "moof" for b in layout.boxes) == 50 // samples.KEYFRAME_INTERVAL_FRAMES


def test_mov_with_pcm_audio(ffmpeg: str, tmp_path: Path) -> None:
    layout = read_layout(samples.make_mov_with_pcm_audio(tmp_path / "d.MOV", ffmpeg=ffmpeg))

    assert layout.major_brand == "qt  "
    assert not layout.moov_before_mdat
    assert [(t.handler, t.fourcc) for t in layout.tracks] == [("vide", "avc1"), ("soun", "sowt")]


def test_hevc_is_tagged_hev1(ffmpeg: str, tmp_path: Path) -> None:
    try:
        path = samples.make_hevc_mp4(tmp_path / "e.mp4", ffmpeg=ffmpeg, seconds=1.0)
    except samples.SampleGenerationFailed as exc:
        pytest.skip(f"this ffmpeg cannot encode HEVC: {exc}")
    layout = read_layout(path)

    assert layout.video_tracks[0].fourcc == "hev1"


def test_truncated_keeps_about_half(ffmpeg: str, tmp_path: Path) -> None:
    whole = read_layout(samples.make_faststart_mp4(tmp_path / "whole.mp4", ffmpeg=ffmpeg))
    path = samples.make_truncated_mp4(tmp_path / "f.mp4", ffmpeg=ffmpeg)
    layout = read_layout(path)

    assert layout.truncated
    assert layout.file_size == pytest.approx(whole.file_size / 2, rel=0.05)
    assert layout.duration_seconds == pytest.approx(2.0, abs=0.05)


def test_truncated_rejects_nonsense_fraction(ffmpeg: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep_fraction"):
        samples.make_truncated_mp4(tmp_path / "g.mp4", ffmpeg=ffmpeg, keep_fraction=1.5)


def test_empty_file(tmp_path: Path) -> None:
    path = samples.make_empty_file(tmp_path / "h.mp4")

    assert path.stat().st_size == 0
    with pytest.raises(NotAnMp4):
        read_layout(path)


def test_failed_generation_reports_ffmpeg_error(ffmpeg: str, tmp_path: Path) -> None:
    with pytest.raises(samples.SampleGenerationFailed, match=r"i\.mp4"):
        samples.make_faststart_mp4(tmp_path / "missing-dir" / "i.mp4", ffmpeg=ffmpeg)
