"""The ffmpeg remux: find ffmpeg, build the command, run it, validate what it wrote.

The remux is a plain argument list, in the order ffmpeg reads it, so tests and logs show exactly
what ffmpeg is asked to do. ffmpeg-python was tried and dropped: its `compile()` sorts an
output's options by name and moves global ones after the output, and the order matters here
(`-c copy` must come before `-c:a aac`; reversed, ffmpeg 9 exits 0 with PCM audio in the MP4).
"""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from upload_jobs.errors import OptimizationFailed
from upload_jobs.media.codecs import (
    BROWSER_VIDEO_FOURCCS,
    MP4_SAFE_AUDIO_FOURCCS,
    unplayable_video,
)
from upload_jobs.media.content import check_nothing_lost, lasts_as_long
from upload_jobs.media.encoding import (
    DEFAULT_ENCODER,
    EncoderSettings,
    ffmpeg_input,
    playable_conversions,
)
from upload_jobs.media.ffmpeg_process import run_ffmpeg
from upload_jobs.media.mp4 import Mp4Layout, read_layout
from upload_jobs.settings import Preset
from upload_jobs.storage.upload_body import FileIdentity

FFMPEG_ENV_VAR = "UPLOAD_JOBS_FFMPEG"

FASTSTART_MOVFLAGS = "+faststart"
# No -frag_duration/-frag_size: they cut fragments mid-GOP. Never combined with +faststart,
# which ffmpeg silently ignores next to these flags.
FRAGMENTED_MOVFLAGS = "+frag_keyframe+empty_moov+delay_moov+default_base_moof"
AAC_BITRATE = "192k"
# Every video, audio and subtitle stream, the container's and each stream's tags, the chapters
# (ffmpeg's default). Timecode and chapter tracks are data streams the MP4 muxer writes again
# from the timecode tag and the chapters; other data streams (a camera's telemetry) are left out,
# and the comparison with the source then keeps the original (`media.content`).
KEEP_EVERY_STREAM = ["-map", "0:v", "-map", "0:a?", "-map", "0:s?", "-dn", "-map_metadata", "0"]
# With +use_metadata_tags every tag goes into the MP4 (Apple's keys: make, model, location,
# creation date), also the source's brands, which would contradict the file's own ftyp.
NOT_CONTAINER_TAGS = ["-metadata", "major_brand=", "-metadata", "minor_version=",
                      "-metadata", "compatible_brands="]  # fmt: skip
SUBTITLE_HANDLERS = frozenset({"sbtl", "subt"})
MP4_TEXT_FOURCCS = frozenset({"tx3g", "text"})


class FfmpegUnavailable(OptimizationFailed):
    """No usable ffmpeg binary: the configured one is missing or not executable."""

    fallback_kind = "ffmpeg_unavailable"


class SourceTruncated(OptimizationFailed):
    """The source's boxes run past end of file (an interrupted copy or recording)."""

    fallback_kind = "source_truncated"


class UnsupportedCodec(OptimizationFailed):
    """The source's video codec cannot be played by browsers, so a remux would not help."""

    fallback_kind = "unsupported_codec"


class OutputInvalid(OptimizationFailed):
    """ffmpeg reported success but its output is not what the preset promises."""

    fallback_kind = "output_invalid"


def resolve_ffmpeg(configured: str | None = None) -> str:
    """The ffmpeg to run: `configured`, else $UPLOAD_JOBS_FFMPEG, else PATH, else imageio-ffmpeg.

    An explicit choice that does not exist or is not executable is an error, never skipped.
    """
    if configured:
        return _usable_executable(configured, "the configured ffmpeg")
    if env_value := os.environ.get(FFMPEG_ENV_VAR):
        return _usable_executable(env_value, FFMPEG_ENV_VAR)
    if on_path := shutil.which("ffmpeg"):
        return on_path
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as exc:
        raise FfmpegUnavailable(
            f"no ffmpeg found: set {FFMPEG_ENV_VAR}, put ffmpeg on PATH "
            f"or install imageio-ffmpeg ({exc})"
        ) from exc


def _usable_executable(value: str, origin: str) -> str:
    if os.sep not in value and (os.altsep is None or os.altsep not in value):
        found = shutil.which(value)
        if found is None:
            raise FfmpegUnavailable(f"{origin} is {value!r}, which is not a command on PATH")
        return found
    candidate = Path(value).expanduser()
    if not candidate.exists():
        raise FfmpegUnavailable(f"{origin} points at {candidate}, which does not exist")
    if not candidate.is_file() or not os.access(candidate, os.X_OK):
        raise FfmpegUnavailable(f"{origin} points at {candidate}, which is not an executable file")
    return str(candidate)


def build_remux_args(
    ffmpeg: str, source: Path, output: Path, preset: Preset, layout: Mp4Layout,
    transcode: bool = False, encoder: EncoderSettings = DEFAULT_ENCODER,
) -> list[str]:  # fmt: skip
    """The full ffmpeg command that copies `source` into a streamable MP4 at `output`, with the
    tracks browsers cannot play re-encoded to H.264/AAC (by `encoder`) when `transcode`.

    Raises UnsupportedCodec, without `transcode`, when the video could not play in a browser.
    """
    if preset is Preset.NONE or preset.many_objects:
        raise ValueError(f"preset {preset!r} makes no single MP4; there is no command to build")
    if not transcode:
        playable_video_fourcc(layout)
    # -n: never overwrite; the output is a fresh unique path, so an existing file means a bug.
    args = ffmpeg_input(ffmpeg, source, "-n")
    conversions = conversions_for_mp4(layout)
    if transcode:
        conversions = [*playable_conversions(layout), *_subtitle_conversion(layout),
                       *encoder.thread_options()]  # fmt: skip
    args += [*KEEP_EVERY_STREAM, "-c", "copy", *conversions]
    movflags = FASTSTART_MOVFLAGS if preset is Preset.FASTSTART else FRAGMENTED_MOVFLAGS
    args += ["-movflags", movflags + "+use_metadata_tags", *NOT_CONTAINER_TAGS]
    return [*args, "-f", "mp4", f"file:{output.absolute()}"]


def conversions_for_mp4(layout: Mp4Layout) -> list[str]:
    """The options that change only the tracks MP4 players need changed: each audio track that
    is not MP4-safe becomes AAC, each HEVC video tagged `hev1` is tagged `hvc1` (Safari), and
    subtitles other than MP4's own text become `mov_text`."""
    options: list[str] = []
    for index, track in enumerate(layout.video_tracks):
        if track.fourcc == "hev1":
            options += [f"-tag:v:{index}", "hvc1"]
    for index, track in enumerate(layout.audio_tracks):
        if track.fourcc not in MP4_SAFE_AUDIO_FOURCCS:
            options += [f"-c:a:{index}", "aac", f"-b:a:{index}", AAC_BITRATE]
    return options + _subtitle_conversion(layout)


def _subtitle_conversion(layout: Mp4Layout) -> list[str]:
    subtitles = [t for t in layout.tracks if t.handler in SUBTITLE_HANDLERS]
    if any(track.fourcc not in MP4_TEXT_FOURCCS for track in subtitles):
        return ["-c:s", "mov_text"]
    return []


def playable_video_fourcc(layout: Mp4Layout) -> str:
    """The first video track's codec; UnsupportedCodec when browsers cannot play it (a remux
    would not help)."""
    if unplayable_video(layout) is None:  # the one place that decides it: media.codecs
        return str(layout.video_tracks[0].fourcc)
    if not layout.video_tracks:
        raise UnsupportedCodec(f"{layout.path.name} has no video track")
    raise UnsupportedCodec(
        f"{layout.path.name} has video codec {layout.video_tracks[0].fourcc!r}, which browsers "
        f"cannot play (playable: {', '.join(sorted(BROWSER_VIDEO_FOURCCS))}); it needs re-encoding"
    )


def temp_output_path(work_dir: Path, source: Path) -> Path:
    """Reserve a new, unique, empty file in `work_dir` for a remux of `source`.

    Created with O_EXCL so concurrent runs never share it; it is never the source itself.
    """
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OptimizationFailed(f"cannot create work dir {work_dir}: {exc.strerror}") from exc
    candidate = work_dir / f"{uuid.uuid4().hex}-{_safe_stem(source)}.mp4"
    if candidate.resolve() == source.resolve():
        raise OptimizationFailed(f"temp output {candidate} would overwrite the source {source}")
    try:
        os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except OSError as exc:
        raise OptimizationFailed(
            f"cannot create a temp file in work dir {work_dir}: {exc.strerror}"
        ) from exc
    # Hard links or bind mounts can give the source a second name; samefile sees through them.
    if source.exists() and os.path.samefile(candidate, source):
        raise OptimizationFailed(f"temp output {candidate} is the source file {source}")
    return candidate


def _safe_stem(source: Path) -> str:
    ascii_stem = unicodedata.normalize("NFKD", source.stem).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_stem).strip("._-")[:60] or "video"


def remux_with_ffmpeg(
    source: Path,
    layout: Mp4Layout,
    work_dir: Path,
    preset: Preset,
    ffmpeg: str,
    *,
    timeout_seconds: float = 3600,
    on_progress: Callable[[float], None] | None = None,
    on_command: Callable[[list[str]], None] | None = None,
    transcode: bool = False,
    encoder: EncoderSettings = DEFAULT_ENCODER,
) -> tuple[Path, Mp4Layout]:
    """Remux `source` into a new file in `work_dir` that keeps every promise `preset` makes, and
    return it with its layout; `on_command` sees the exact ffmpeg command before it runs;
    `transcode` re-encodes what browsers cannot play.

    Never modifies the source; any failure removes the output and raises OptimizationFailed.
    """
    before = FileIdentity.of(source.stat())
    output = temp_output_path(work_dir, source)
    try:
        args = build_remux_args(ffmpeg, source, output, preset, layout, transcode, encoder)
        if on_command is not None:
            on_command(args)
        # Hand the reserved name to ffmpeg: with -n it must create the file itself.
        output.unlink()
        with encoder.slot() if transcode else nullcontext():
            run_ffmpeg(args, timeout_seconds, layout.duration_seconds, on_progress)
        if FileIdentity.of(source.stat()) != before:
            raise OptimizationFailed(f"source {source} changed while it was being remuxed")
        output_layout = _validated_output(output, layout, preset)
        check_nothing_lost(ffmpeg, layout, output_layout, transcoded=transcode)
        return output, output_layout
    except BaseException:
        output.unlink(missing_ok=True)
        raise


def _validated_output(output: Path, source: Mp4Layout, preset: Preset) -> Mp4Layout:
    """The output's layout, if it keeps every promise the preset makes; else OutputInvalid."""
    if not output.exists() or output.stat().st_size == 0:
        state = "is empty" if output.exists() else "was never written"
        raise OutputInvalid(f"ffmpeg exited successfully but the output file {state}")
    try:
        layout = read_layout(output)
    except OptimizationFailed as exc:
        raise OutputInvalid(f"remuxed output is unreadable: {exc}") from exc

    problems: list[str] = []
    if layout.truncated:
        problems.append(f"it is truncated ({layout.truncation})")
    if preset is Preset.FASTSTART and not layout.is_faststart:
        problems.append("it is not faststart (moov is not before mdat, or it is fragmented)")
    if preset is Preset.FRAGMENTED and not layout.fragmented:
        problems.append("it is not fragmented")
    expected = len(source.video_tracks), len(source.audio_tracks)
    got = len(layout.video_tracks), len(layout.audio_tracks)
    if got != expected:
        problems.append(
            f"it has {got[0]} video and {got[1]} audio tracks, the source {expected[0]} and "
            f"{expected[1]}"
        )
    expected_seconds, actual = source.duration_seconds, layout.duration_seconds
    # Without a source duration there is nothing to compare against; the layout and stream
    # checks above still hold.
    if expected_seconds is not None:
        if actual is None:
            problems.append("it has no duration")
        elif not lasts_as_long(expected_seconds, actual):
            problems.append(
                f"it lasts {actual:.2f} s but the source lasts {expected_seconds:.2f} s"
            )
    if problems:
        raise OutputInvalid("remuxed output failed validation: " + "; ".join(problems))
    return layout
