"""The startup cost: what a player fetches before the first frame, checked against what ffmpeg can
decode from exactly that many bytes, for moov at the end, faststart, the in-process move and
fragmented files, with both ffmpegs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from upload_jobs.media import samples
from upload_jobs.media.startup import (
    StartupCost,
    describe_startup,
    startup_cost,
    startup_cost_of_body,
)
from upload_jobs.media.streaming import StreamingPath, optimize_for_streaming
from upload_jobs.settings import Preset


def video_frames_in(path: Path, ffmpeg: str) -> int:
    """How many video frames ffmpeg decodes from `path` (0 when it cannot open it at all)."""
    result = subprocess.run(
        [
            ffmpeg,
            "-nostdin",
            "-v",
            "quiet",
            "-i",
            str(path),
            "-map",
            "0:v:0",
            "-f",
            "framemd5",
            "-",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return sum(1 for line in result.stdout.splitlines() if line and not line.startswith("#"))


def first_bytes(path: Path, count: int, target: Path) -> Path:
    target.write_bytes(path.read_bytes()[:count])
    return target


def test_faststart_startup_is_what_the_first_frame_needs(ffmpeg: str, tmp_path: Path) -> None:
    clip = samples.make_faststart_mp4(tmp_path / "fast.mp4", ffmpeg=ffmpeg, seconds=4)
    cost = startup_cost(clip)
    assert cost is not None and cost.moov_first and cost.range_requests == 1
    assert cost.moov_offset < 64 and cost.startup_bytes > cost.moov_offset + cost.moov_bytes
    assert cost.startup_bytes < clip.stat().st_size / 10
    # Exactly the startup bytes are enough to decode the first frame; the index alone is not.
    enough = first_bytes(clip, cost.startup_bytes, tmp_path / "enough.mp4")
    assert video_frames_in(enough, ffmpeg) >= 1
    index_only = first_bytes(clip, cost.moov_offset + cost.moov_bytes, tmp_path / "index.mp4")
    assert video_frames_in(index_only, ffmpeg) == 0


def test_moov_at_the_end_costs_the_whole_file_in_order_or_three_requests(
    ffmpeg: str, tmp_path: Path
) -> None:
    clip = samples.make_moov_at_end_mp4(tmp_path / "end.mp4", ffmpeg=ffmpeg, seconds=4)
    cost = startup_cost(clip)
    size = clip.stat().st_size
    assert cost == StartupCost(size, cost.moov_offset, size - cost.moov_offset, 3)
    # All the media without the index decodes nothing: a player reading in order needs it all.
    media_only = first_bytes(clip, cost.moov_offset, tmp_path / "cut.mp4")
    assert video_frames_in(media_only, ffmpeg) == 0
    assert video_frames_in(clip, ffmpeg) == 100


def test_the_moved_upload_starts_like_ffmpegs_faststart(ffmpeg: str, tmp_path: Path) -> None:
    source = samples.make_moov_at_end_mp4(tmp_path / "end.mp4", ffmpeg=ffmpeg, seconds=4)
    made = optimize_for_streaming(source, tmp_path / "work", Preset.FASTSTART, ffmpeg)
    assert made.path is StreamingPath.MOVED_IN_PROCESS
    before, after = startup_cost(source), startup_cost_of_body(made.body)
    assert before is not None and after is not None
    assert after.range_requests == 1 and after.moov_bytes == before.moov_bytes
    remuxed = tmp_path / "remuxed.mp4"
    subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(source), "-c", "copy", "-movflags", "+faststart",
         str(remuxed)],
        check=True,
    )  # fmt: skip
    by_ffmpeg = startup_cost(remuxed)
    assert by_ffmpeg is not None
    # ffmpeg 9 rewrites other boxes, so the sizes may differ by a few bytes of header.
    assert after.startup_bytes == pytest.approx(by_ffmpeg.startup_bytes, abs=256)


def test_a_fragmented_file_starts_with_its_first_fragment(ffmpeg: str, tmp_path: Path) -> None:
    clip = samples.make_fragmented_mp4(tmp_path / "frag.mp4", ffmpeg=ffmpeg, seconds=4)
    cost = startup_cost(clip)
    assert cost is not None and cost.range_requests == 1
    assert cost.moov_offset + cost.moov_bytes < cost.startup_bytes < clip.stat().st_size


def test_a_file_cut_short_starts_if_its_first_frame_is_there(ffmpeg: str, tmp_path: Path) -> None:
    truncated = samples.make_truncated_mp4(tmp_path / "cut.mp4", ffmpeg=ffmpeg)
    cost = startup_cost(truncated)
    assert cost is not None and cost.range_requests == 1  # cut in the media, after moov
    assert video_frames_in(truncated, ffmpeg) >= 1
    before_first_frame = first_bytes(truncated, cost.startup_bytes - 1, tmp_path / "short.mp4")
    assert startup_cost(before_first_frame) is None


def test_files_no_player_can_start_have_no_cost(ffmpeg: str, tmp_path: Path) -> None:
    at_end = samples.make_moov_at_end_mp4(tmp_path / "end.mp4", ffmpeg=ffmpeg)
    no_index = first_bytes(at_end, at_end.stat().st_size - 100, tmp_path / "no-index.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all")
    assert startup_cost(no_index) is None and startup_cost(text) is None


def test_startup_is_described_before_and_after() -> None:
    end = StartupCost(6_400_000, 6_390_000, 10_000, 3)
    fast = StartupCost(42_300, 32, 10_000, 1)
    assert describe_startup(end, fast) == (
        "6.10 MB → 41.3 KB before the first frame (3 requests → 1)"
    )
    assert (
        describe_startup(fast, fast) == "41.3 KB (1 request) before the first frame, as the source"
    )
    assert describe_startup(None, fast).endswith("(the source's is unknown)")
    assert describe_startup(end, None).startswith("unknown")
