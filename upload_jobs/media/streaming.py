"""Make a source stream-ready the cheapest safe way for its preset: as it is, with its index
moved in process, remuxed or re-encoded by ffmpeg into one MP4, or packaged as HLS (its own
tracks, or a ladder). A level that fails falls back to the next (`Preset.fallbacks`: abr, then
hls, then faststart); which way was taken, why not a cheaper one, and each declined level's
reason are in the result, or, when every level failed, on the last failure (`declined`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from upload_jobs.errors import OptimizationFailed
from upload_jobs.media.hls_levels import hls_level
from upload_jobs.media.mp4 import Mp4Layout, read_layout
from upload_jobs.media.optimization import (
    DeclinedLevel,
    LevelRequest,
    OptimizationResult,
    StreamingPath,
)
from upload_jobs.media.optimization import StreamingOptions as StreamingOptions
from upload_jobs.media.remux import SourceTruncated
from upload_jobs.media.single_file import as_is, single_file_level
from upload_jobs.settings import Preset

__all__ = ["DeclinedLevel", "OptimizationResult", "StreamingOptions", "StreamingPath",
           "optimize_for_streaming"]  # fmt: skip
DEFAULT_OPTIONS = StreamingOptions()


def optimize_for_streaming(
    source: Path,
    work_dir: Path,
    preset: Preset,
    ffmpeg: str | None = None,
    *,
    options: StreamingOptions = DEFAULT_OPTIONS,
    on_progress: Callable[[float], None] | None = None,
    on_command: Callable[[list[str]], None] | None = None,
    on_declined: Callable[[DeclinedLevel], None] | None = None,
) -> OptimizationResult:
    """The upload that makes `source` stream-ready for `preset`, trying its levels in order
    (`on_declined` hears of each that fails); output goes in `work_dir` (`ffmpeg`: the
    configured binary, found as `resolve_ffmpeg` does only when it is needed).

    Never modifies the source; a failure leaves no file and raises OptimizationFailed, whose
    `declined` lists every level tried.
    """
    if preset is Preset.NONE:
        return as_is(source, preset, StreamingPath.NOT_REQUESTED, None)
    layout = _read_source_layout(source)
    if layout.truncated:
        raise SourceTruncated(f"source is truncated: {layout.truncation}")
    request = LevelRequest(source, layout, work_dir, ffmpeg, options, on_progress, on_command)
    declined: list[DeclinedLevel] = []
    levels = preset.fallbacks
    for level in levels:
        make = hls_level if level.many_objects else single_file_level
        try:
            result = make(request, level)
        except OptimizationFailed as failed:
            declined.append(DeclinedLevel(str(level), failed.fallback_kind, str(failed)))
            if level is levels[-1]:
                failed.declined = tuple(declined)
                raise
            if on_declined is not None:
                on_declined(declined[-1])
            continue
        return replace(result, preset=preset, declined=tuple(declined))
    raise AssertionError("a preset has at least one level")  # pragma: no cover


def _read_source_layout(source: Path) -> Mp4Layout:
    try:
        return read_layout(source)
    except OSError as exc:
        raise OptimizationFailed(f"cannot read source {source}: {exc.strerror or exc}") from exc
