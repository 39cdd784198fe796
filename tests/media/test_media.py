"""ffmpeg resolution, the remux command, and optimize_for_streaming against real ffmpeg."""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from upload_jobs.errors import OptimizationFailed
from upload_jobs.media import samples
from upload_jobs.media.ffmpeg_process import RemuxFailed
from upload_jobs.media.mp4 import Mp4Layout, NotAnMp4, Track, read_layout
from upload_jobs.media.remux import (
    FfmpegUnavailable,
    OutputInvalid,
    SourceTruncated,
    UnsupportedCodec,
    build_remux_args,
    resolve_ffmpeg,
    temp_output_path,
)
from upload_jobs.media.streaming import (
    OptimizationResult,
    StreamingOptions,
    StreamingPath,
    optimize_for_streaming,
)
from upload_jobs.settings import Preset

FASTSTART = Preset.FASTSTART
FRAGMENTED = Preset.FRAGMENTED
REMUXED, READY = StreamingPath.FFMPEG_REMUX, StreamingPath.ALREADY_READY


def remux(
    source: Path, work_dir: Path, preset: Preset, ffmpeg: str, *, timeout_seconds: float = 3600,
    transcode_unplayable: bool = True, **callbacks: Any,
) -> Any:  # fmt: skip
    """`optimize_for_streaming` with the in-process move off: what these tests check is ffmpeg."""
    options = StreamingOptions(
        in_process=False, timeout_seconds=timeout_seconds, transcode_unplayable=transcode_unplayable
    )
    return optimize_for_streaming(source, work_dir, preset, ffmpeg, options=options, **callbacks)


def output_of(result: OptimizationResult) -> Path:
    """The file the result uploads (its body is that whole file)."""
    assert result.body.is_whole_file
    return result.body.path


@pytest.fixture
def clips(clip_library: dict[str, Path]) -> dict[str, Path]:
    return clip_library


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


class SourceGuard:
    """Remembers each source's sha256 so a test can prove the source was never modified."""

    def __init__(self) -> None:
        self._digests: dict[Path, str] = {}

    def watch(self, path: Path) -> Path:
        self._digests[path] = sha256(path)
        return path

    def assert_unchanged(self) -> None:
        assert self._digests, "the test watched no source"
        for path, digest in self._digests.items():
            assert sha256(path) == digest, f"{path} was modified"


@pytest.fixture
def guard() -> SourceGuard:
    return SourceGuard()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fake_ffmpeg(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-ffmpeg"
    script.write_text(f"#!/bin/bash\n{body}\n")
    script.chmod(0o755)
    return str(script)


def layout_of(
    video: str | None,
    audio: str | None = "mp4a",
    *,
    with_video: bool = True,
    with_audio: bool = True,
) -> Mp4Layout:
    tracks = []
    if with_video:
        tracks.append(Track(1, "vide", video, 2.0))
    if with_audio:
        tracks.append(Track(2, "soun", audio, 2.0))
    return Mp4Layout(
        path=Path("/videos/clip.mp4"),
        file_size=1000,
        boxes=[],
        major_brand="isom",
        moov_before_mdat=False,
        fragmented=False,
        truncation=None,
        duration_seconds=2.0,
        tracks=tracks,
    )


# --- argument list --------------------------------------------------------------------


SRC = Path("/videos/x.mp4s/clip.MP4")
OUT = Path("/work/123-clip.mp4")


def test_args_for_h264_aac_faststart() -> None:
    args = build_remux_args("ffmpeg", SRC, OUT, FASTSTART, layout_of("avc1", "mp4a"))

    assert args == [
        "ffmpeg", "-nostdin", "-hide_banner", "-n", "-progress", "pipe:1", "-nostats",
        "-i", "file:/videos/x.mp4s/clip.MP4",
        "-map", "0:v", "-map", "0:a?", "-map", "0:s?", "-dn", "-map_metadata", "0",
        "-c", "copy", "-movflags", "+faststart+use_metadata_tags",
        "-metadata", "major_brand=", "-metadata", "minor_version=",
        "-metadata", "compatible_brands=",
        "-f", "mp4", "file:/work/123-clip.mp4",
    ]  # fmt: skip
    assert "-y" not in args


def test_args_tag_only_the_hevc_tracks_tagged_hev1() -> None:
    layout = layout_of("avc1")
    layout.tracks[1:1] = [Track(3, "vide", "hev1", 2.0), Track(4, "vide", "hvc1", 2.0)]
    args = build_remux_args("ffmpeg", SRC, OUT, FASTSTART, layout)

    assert [a for a in args if a.startswith("-tag")] == ["-tag:v:1"]
    assert args[args.index("-tag:v:1") + 1] == "hvc1"


def test_args_do_not_tag_h264() -> None:
    args = build_remux_args("ffmpeg", SRC, OUT, FASTSTART, layout_of("avc1"))
    assert not [a for a in args if a.startswith("-tag")]


@pytest.mark.parametrize("fourcc", ["sowt", "twos", "lpcm", "ipcm", "fLaC", None])
def test_args_reencode_audio_mp4_cannot_carry(fourcc: str | None) -> None:
    args = build_remux_args("ffmpeg", SRC, OUT, FASTSTART, layout_of("avc1", fourcc))

    at = args.index("-c:a:0")
    assert args[at : at + 4] == ["-c:a:0", "aac", "-b:a:0", "192k"]
    assert at > args.index("-c")  # later -c:a overrides the blanket -c copy


def test_args_convert_each_audio_track_that_needs_it_and_copy_the_others() -> None:
    layout = layout_of("avc1", "mp4a")
    layout.tracks.extend([Track(3, "soun", "sowt", 2.0), Track(4, "soun", "ac-3", 2.0)])
    args = build_remux_args("ffmpeg", SRC, OUT, FASTSTART, layout)

    assert [a for a in args if a.startswith("-c:a")] == ["-c:a:1"]


def test_args_make_subtitles_mov_text_only_when_they_are_not() -> None:
    layout = layout_of("avc1")
    layout.tracks.append(Track(3, "sbtl", "tx3g", 2.0))
    assert "-c:s" not in build_remux_args("ffmpeg", SRC, OUT, FASTSTART, layout)
    layout.tracks.append(Track(4, "subt", "wvtt", 2.0))
    args = build_remux_args("ffmpeg", SRC, OUT, FASTSTART, layout)
    assert args[args.index("-c:s") + 1] == "mov_text"


@pytest.mark.parametrize("fourcc", ["mp4a", "ac-3", "ec-3", "Opus"])
def test_args_copy_mp4_safe_audio(fourcc: str) -> None:
    args = build_remux_args("ffmpeg", SRC, OUT, FASTSTART, layout_of("avc1", fourcc))
    assert not [a for a in args if a.startswith("-c:a")]


def test_args_for_video_without_audio_still_optional_map() -> None:
    args = build_remux_args("ffmpeg", SRC, OUT, FASTSTART, layout_of("avc1", with_audio=False))

    assert "0:a?" in args
    assert not [a for a in args if a.startswith("-c:a")]


def test_args_for_fragmented_preset() -> None:
    args = build_remux_args("ffmpeg", SRC, OUT, FRAGMENTED, layout_of("avc1"))

    flags = args[args.index("-movflags") + 1]
    assert flags == "+frag_keyframe+empty_moov+delay_moov+default_base_moof+use_metadata_tags"
    assert args.count("-movflags") == 1
    assert not any("faststart" in a for a in args)
    assert not any(a in ("-frag_duration", "-frag_size") for a in args)


@pytest.mark.parametrize("fourcc", ["mp4v", "apcn", "avc2", None])
def test_args_refuse_video_browsers_cannot_play(fourcc: str | None) -> None:
    with pytest.raises(UnsupportedCodec, match="browsers cannot play"):
        build_remux_args("ffmpeg", SRC, OUT, FASTSTART, layout_of(fourcc))


def test_args_refuse_audio_only_source() -> None:
    with pytest.raises(UnsupportedCodec, match="no video track"):
        build_remux_args("ffmpeg", SRC, OUT, FASTSTART, layout_of(None, with_video=False))


# --- resolve_ffmpeg ---------------------------------------------------------------------


def test_resolve_env_pointing_at_missing_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPLOAD_JOBS_FFMPEG", "/nowhere/bin/ffmpeg")

    with pytest.raises(FfmpegUnavailable, match=r"UPLOAD_JOBS_FFMPEG points at /nowhere/bin/ff"):
        resolve_ffmpeg()


def test_resolve_env_pointing_at_non_executable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    plain = tmp_path / "ffmpeg"
    plain.write_text("not a program")
    monkeypatch.setenv("UPLOAD_JOBS_FFMPEG", str(plain))

    with pytest.raises(FfmpegUnavailable, match="not an executable file"):
        resolve_ffmpeg()


def test_resolve_prefers_configured_then_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configured = fake_ffmpeg(tmp_path, "exit 0")
    monkeypatch.setenv("UPLOAD_JOBS_FFMPEG", "/nowhere/ffmpeg")
    assert resolve_ffmpeg(configured) == configured

    monkeypatch.setenv("UPLOAD_JOBS_FFMPEG", configured)
    assert resolve_ffmpeg() == configured


def test_resolve_falls_back_to_bundled_ffmpeg(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("UPLOAD_JOBS_FFMPEG", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))

    found = resolve_ffmpeg()

    assert os.access(found, os.X_OK)
    assert "imageio_ffmpeg" in found or os.environ.get("IMAGEIO_FFMPEG_EXE")


# --- temp_output_path -------------------------------------------------------------------


def test_temp_output_path_is_unique_and_never_the_source(tmp_path: Path) -> None:
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"original")
    work = tmp_path / "not-yet" / "work"

    first = temp_output_path(work, source)
    second = temp_output_path(work, source)

    assert first != second
    assert first.parent == second.parent == work
    assert first.exists() and first.stat().st_size == 0  # reserved, empty
    assert not first.samefile(source)
    assert first.name.endswith("-clip.mp4")
    assert source.read_bytes() == b"original"


def test_temp_output_path_in_the_source_folder_keeps_source(tmp_path: Path) -> None:
    source = tmp_path / "my clip é.MOV"
    source.write_bytes(b"original")

    out = temp_output_path(tmp_path, source)

    assert out.resolve() != source.resolve()
    assert out.name.endswith("-my_clip_e.mp4")
    assert source.read_bytes() == b"original"


# --- optimize_for_streaming -------------------------------------------------------------


def test_moov_at_end_is_remuxed_to_faststart(
    ffmpeg: str, clips: dict[str, Path], work_dir: Path, guard: SourceGuard
) -> None:
    source = clips["moov_at_end"]
    guard.watch(source)
    commands: list[list[str]] = []

    result = remux(source, work_dir, FASTSTART, ffmpeg, on_command=commands.append)

    assert result.path is REMUXED
    assert result.reason == "the in-process move is turned off (UPLOAD_JOBS_FASTSTART_IN_PROCESS)"
    # The command reported (and logged by the task) is the one that ran, argument for argument.
    assert commands == [
        build_remux_args(ffmpeg, source, output_of(result), FASTSTART, read_layout(source))
    ]
    assert output_of(result) == result.temp_path
    assert output_of(result).parent == work_dir
    layout = read_layout(output_of(result))
    assert layout.is_faststart
    assert [t.fourcc for t in layout.tracks] == ["avc1", "mp4a"]
    assert result.source_duration_seconds == pytest.approx(2.0, abs=0.05)
    assert result.output_duration_seconds == pytest.approx(result.source_duration_seconds)
    guard.assert_unchanged()


def test_already_faststart_is_uploaded_as_is(
    ffmpeg: str, clips: dict[str, Path], work_dir: Path, guard: SourceGuard
) -> None:
    source = clips["faststart"]
    guard.watch(source)

    result = remux(source, work_dir, FASTSTART, ffmpeg)

    assert output_of(result) == source
    assert result.path is READY
    assert result.temp_path is None
    assert list(work_dir.iterdir()) == []
    guard.assert_unchanged()


def test_fragmented_preset_fragments_a_plain_mp4(
    ffmpeg: str, clips: dict[str, Path], work_dir: Path, guard: SourceGuard
) -> None:
    source = clips["moov_at_end"]
    guard.watch(source)

    result = remux(source, work_dir, FRAGMENTED, ffmpeg)

    layout = read_layout(output_of(result))
    assert layout.fragmented
    assert sum(b.type == "moof" for b in layout.boxes) >= 3
    assert result.output_duration_seconds == pytest.approx(2.0, abs=0.1)
    guard.assert_unchanged()


def test_fragmented_source_already_fits_fragmented_preset(
    ffmpeg: str, clips: dict[str, Path], work_dir: Path, guard: SourceGuard
) -> None:
    source = clips["fragmented"]
    guard.watch(source)

    result = remux(source, work_dir, FRAGMENTED, ffmpeg)

    assert output_of(result) == source and result.path is READY
    guard.assert_unchanged()


def test_fragmented_source_is_made_faststart(
    ffmpeg: str, clips: dict[str, Path], work_dir: Path, guard: SourceGuard
) -> None:
    source = clips["fragmented"]
    guard.watch(source)

    result = remux(source, work_dir, FASTSTART, ffmpeg)

    layout = read_layout(output_of(result))
    assert layout.is_faststart
    assert layout.duration_seconds == pytest.approx(2.0, abs=0.1)
    guard.assert_unchanged()


def test_preset_none_leaves_everything_alone(
    ffmpeg: str, tmp_path: Path, work_dir: Path, guard: SourceGuard
) -> None:
    source = tmp_path / "anything.bin"
    source.write_bytes(b"not even a video")
    guard.watch(source)

    result = remux(source, work_dir, Preset.NONE, ffmpeg)

    assert (output_of(result), result.path) == (source, StreamingPath.NOT_REQUESTED)
    assert result.temp_path is None
    assert list(work_dir.iterdir()) == []
    guard.assert_unchanged()


def test_mov_with_pcm_in_awkward_folder_becomes_faststart_mp4_with_aac(
    ffmpeg: str, tmp_path: Path, work_dir: Path, guard: SourceGuard
) -> None:
    folder = tmp_path / "x.mp4s"
    folder.mkdir()
    source = samples.make_mov_with_pcm_audio(folder / "my clip é.MOV", ffmpeg=ffmpeg)
    guard.watch(source)

    result = remux(source, work_dir, FASTSTART, ffmpeg)

    assert result.path is REMUXED
    assert output_of(result).parent == work_dir and output_of(result).suffix == ".mp4"
    layout = read_layout(output_of(result))
    assert layout.is_faststart
    assert layout.major_brand != "qt  "
    assert [t.fourcc for t in layout.tracks] == ["avc1", "mp4a"]
    assert layout.duration_seconds == pytest.approx(2.0, abs=0.1)
    assert sorted(p.name for p in folder.iterdir()) == ["my clip é.MOV"]
    guard.assert_unchanged()


def test_hevc_is_retagged_hvc1(
    ffmpeg: str, tmp_path: Path, work_dir: Path, guard: SourceGuard
) -> None:
    try:
        source = samples.make_hevc_mp4(tmp_path / "hevc.mp4", ffmpeg=ffmpeg, seconds=1.0)
    except samples.SampleGenerationFailed as exc:
        pytest.skip(f"this ffmpeg cannot encode HEVC: {exc}")
    guard.watch(source)

    # Re-encoding turned off: HEVC stays HEVC, tagged the way Safari plays it.
    result = remux(source, work_dir, FASTSTART, ffmpeg, transcode_unplayable=False)

    assert read_layout(output_of(result)).video_tracks[0].fourcc == "hvc1"
    guard.assert_unchanged()


def test_truncated_source_is_refused(
    ffmpeg: str, tmp_path: Path, work_dir: Path, guard: SourceGuard
) -> None:
    source = samples.make_truncated_mp4(tmp_path / "cut.mp4", ffmpeg=ffmpeg)
    guard.watch(source)

    with pytest.raises(SourceTruncated, match=r"source is truncated: box mdat declares \d+ bytes"):
        remux(source, work_dir, FASTSTART, ffmpeg)
    assert list(work_dir.iterdir()) == []
    guard.assert_unchanged()


def test_random_bytes_are_refused(
    ffmpeg: str, tmp_path: Path, work_dir: Path, guard: SourceGuard
) -> None:
    source = tmp_path / "noise.mp4"
    source.write_bytes(random.Random(7).randbytes(2048))
    guard.watch(source)

    with pytest.raises(NotAnMp4):
        remux(source, work_dir, FASTSTART, ffmpeg)
    assert list(work_dir.iterdir()) == []
    guard.assert_unchanged()


def test_unplayable_video_is_refused_before_running_ffmpeg(
    ffmpeg: str, tmp_path: Path, work_dir: Path, guard: SourceGuard
) -> None:
    source = samples.make_mpeg4_part2_mp4(tmp_path / "mpeg4.mp4", ffmpeg=ffmpeg)
    guard.watch(source)
    never_run = fake_ffmpeg(tmp_path, "exit 99")

    with pytest.raises(UnsupportedCodec, match="'mp4v'"):
        remux(source, work_dir, FASTSTART, never_run, transcode_unplayable=False)
    assert list(work_dir.iterdir()) == []
    guard.assert_unchanged()


BROKEN_FFMPEG = [
    pytest.param(
        'out="${@: -1}"; touch "${out#file:}"; echo $$ > "$PIDS"; sleep 120 & echo $! >> "$PIDS"; '
        "sleep 120",
        RemuxFailed,
        r"did not finish within 0\.5 s",
        id="hangs-past-timeout",
        # Without the process-group kill, the orphaned sleep holds ffmpeg's stdout open and the
        # remux never returns: this limit turns that into a failure (after the 2-minute sleep).
        marks=pytest.mark.timeout(30),
    ),
    pytest.param(
        'out="${@: -1}"; printf x > "${out#file:}"\n'
        'echo "av_interleaved_write_frame(): No space left on device" >&2; exit 1',
        RemuxFailed,
        r"exit status 1:\nav_interleaved.*No space left",
        id="disk-full",
    ),
    pytest.param(
        'out="${@: -1}"; touch "${out#file:}"; kill -KILL $$',
        RemuxFailed,
        "killed by SIGKILL",
        id="killed-by-signal",
    ),
    # ffmpeg 9 exits 0 when -n finds the output already there; nothing gets written.
    pytest.param("exit 0", OutputInvalid, "output file was never written", id="exit-0-no-output"),
]


@pytest.mark.parametrize(("script", "error", "message"), BROKEN_FFMPEG)
def test_ffmpeg_failures_fall_back_with_a_reason_and_no_temp_file(
    clips: dict[str, Path],
    tmp_path: Path,
    work_dir: Path,
    guard: SourceGuard,
    monkeypatch: pytest.MonkeyPatch,
    script: str,
    error: type[Exception],
    message: str,
) -> None:
    source = clips["moov_at_end"]
    guard.watch(source)
    pids = tmp_path / "pids"
    monkeypatch.setenv("PIDS", str(pids))

    with pytest.raises(error, match=message):
        remux(source, work_dir, FASTSTART, fake_ffmpeg(tmp_path, script), timeout_seconds=0.5)

    assert list(work_dir.iterdir()) == []
    guard.assert_unchanged()
    # A stopped ffmpeg takes its children with it (its whole process group is killed; on a busy
    # machine a killed process may take a moment to be gone).
    for pid in pids.read_text().split() if pids.exists() else []:
        deadline = time.monotonic() + 5
        while _process_alive(int(pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _process_alive(int(pid)), f"process {pid} outlived the timeout"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child not yet reaped by init still answers signal 0: check it is a zombie.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_short_output_fails_duration_check(
    ffmpeg: str, clips: dict[str, Path], tmp_path: Path, work_dir: Path,
    guard: SourceGuard,
) -> None:  # fmt: skip
    # What a truncated faststart input does: ffmpeg exits 0 with half the movie.
    source = clips["moov_at_end"]
    guard.watch(source)
    half = fake_ffmpeg(tmp_path, f'exec "{ffmpeg}" -t 1 "$@"')

    with pytest.raises(OutputInvalid, match=r"lasts 1\.00 s but the source lasts 2\.00 s"):
        remux(source, work_dir, FASTSTART, half)
    assert list(work_dir.iterdir()) == []
    guard.assert_unchanged()


def test_dropped_audio_fails_stream_check(
    ffmpeg: str, clips: dict[str, Path], tmp_path: Path, work_dir: Path,
    guard: SourceGuard,
) -> None:  # fmt: skip
    source = clips["moov_at_end"]
    guard.watch(source)
    no_audio = fake_ffmpeg(tmp_path, f'exec "{ffmpeg}" "${{@:1:$#-1}}" -an "${{@: -1}}"')

    with pytest.raises(OutputInvalid, match="1 video and 0 audio tracks, the source 1 and 1"):
        remux(source, work_dir, FASTSTART, no_audio)
    assert list(work_dir.iterdir()) == []
    guard.assert_unchanged()


def test_progress_increases_to_100(
    ffmpeg: str, clips: dict[str, Path], tmp_path: Path, work_dir: Path
) -> None:
    seen: list[float] = []
    remux(clips["moov_at_end"], work_dir, FASTSTART, ffmpeg, on_progress=seen.append)

    assert seen and seen[-1] == 100.0
    assert all(a < b for a, b in itertools.pairwise(seen))


def test_progress_parses_partial_updates(
    ffmpeg: str, clips: dict[str, Path], tmp_path: Path, work_dir: Path
) -> None:
    chatty = fake_ffmpeg(
        tmp_path,
        "printf 'out_time_us=N/A\\nout_time_us=500000\\nout_time_ms=500000\\n"
        "progress=continue\\nout_time_ms=1000000\\nout_time_us=1500000\\n'\n"
        f'exec "{ffmpeg}" "$@"',
    )
    seen: list[float] = []

    remux(clips["moov_at_end"], work_dir, FASTSTART, chatty, on_progress=seen.append)

    assert seen[:3] == [25.0, 50.0, 75.0]
    assert seen[-1] == 100.0
    assert all(a < b for a, b in itertools.pairwise(seen))


def test_failures_are_optimization_failed() -> None:
    for error in (FfmpegUnavailable, SourceTruncated, UnsupportedCodec, RemuxFailed, OutputInvalid):
        assert issubclass(error, OptimizationFailed)
