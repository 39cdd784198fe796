"""The single-MP4 levels (`faststart`, `fragmented`): the source as it is, its index moved in
process, remuxed, or re-encoded to H.264/AAC when browsers could not play it otherwise."""

from __future__ import annotations

from pathlib import Path

from upload_jobs.media.codecs import (
    audio_transcode_needed,
    conversion_needed,
    unplayable_video,
    video_transcode_needed,
)
from upload_jobs.media.faststart import FaststartRefused, plan_faststart
from upload_jobs.media.mp4 import Mp4Layout
from upload_jobs.media.optimization import LevelRequest, OptimizationResult, StreamingPath
from upload_jobs.media.quality import measure_quality
from upload_jobs.media.remux import remux_with_ffmpeg, resolve_ffmpeg
from upload_jobs.media.renditions import RenditionSummary
from upload_jobs.settings import Preset
from upload_jobs.storage.upload_body import UploadBody


def single_file_level(request: LevelRequest, preset: Preset) -> OptimizationResult:
    """The source made stream-ready as one MP4 for `preset` the cheapest safe way: video
    browsers cannot show is re-encoded (`transcoded`), audio they cannot play becomes AAC in a
    remux."""
    source, layout, options = request.source, request.layout, request.options
    browsers = options.transcode_unplayable
    video_reason = video_transcode_needed(layout) if browsers else None
    if video_reason:
        return _transcoded(request, preset, video_reason)
    # Without re-encoding, video no browser decodes gains nothing from a conversion: its layout
    # is all there is to do.
    unplayable = unplayable_video(layout)
    needed = None if unplayable else conversion_needed(layout)
    # AC-3 and the like are fine in MP4 but not in browsers: AAC from the same remux.
    audio_reason = audio_transcode_needed(layout) if browsers and needed is None else None
    needed = needed or audio_reason
    layout_ready = layout.is_faststart if preset is Preset.FASTSTART else layout.fragmented
    if layout_ready and needed is None:
        return as_is(source, preset, StreamingPath.ALREADY_READY, layout, unplayable)
    reason = needed or "the fragmented preset is made by ffmpeg"
    if preset is Preset.FASTSTART and needed is None:
        reason = "the in-process move is turned off (UPLOAD_JOBS_FASTSTART_IN_PROCESS)"
        if options.in_process:
            try:
                relocation = plan_faststart(source, layout)
            except FaststartRefused as refused:
                reason = str(refused)
            else:
                duration = layout.duration_seconds
                return OptimizationResult(
                    relocation.body, StreamingPath.MOVED_IN_PROCESS, preset, unplayable,
                    duration, duration, None, layout, relocation.layout,
                )  # fmt: skip
    output, output_layout = _remux(request, preset, transcode=audio_reason is not None)
    return OptimizationResult(
        UploadBody.of_file(output), StreamingPath.FFMPEG_REMUX, preset, reason,
        layout.duration_seconds, output_layout.duration_seconds, output, layout, output_layout,
    )  # fmt: skip


def _remux(request: LevelRequest, preset: Preset, transcode: bool) -> tuple[Path, Mp4Layout]:
    options = request.options
    return remux_with_ffmpeg(
        request.source, request.layout, request.work_dir, preset, resolve_ffmpeg(request.ffmpeg),
        timeout_seconds=options.timeout_seconds, on_progress=request.on_progress,
        on_command=request.on_command, transcode=transcode, encoder=options.encoder,
    )  # fmt: skip


def _transcoded(request: LevelRequest, preset: Preset, reason: str) -> OptimizationResult:
    source, layout = request.source, request.layout
    output, output_layout = _remux(request, preset, transcode=True)
    width, height = output_layout.video_tracks[0].display_size
    options = request.options
    with options.encoder.slot():  # decoding both is CPU work as much as encoding
        quality = measure_quality(
            resolve_ffmpeg(request.ffmpeg), source, output, width, height,
            sample_seconds=options.quality_sample_seconds, timeout_seconds=options.timeout_seconds,
        )  # fmt: skip
    duration = output_layout.duration_seconds or 0
    size = output.stat().st_size
    rendition = RenditionSummary(
        "transcoded", width, height, round(size * 8 / duration) if duration else 0, size, True,
        quality.psnr if quality else None, quality.ssim if quality else None,
    )  # fmt: skip
    return OptimizationResult(
        UploadBody.of_file(output), StreamingPath.TRANSCODED, preset,
        f"{reason}: re-encoded to H.264/AAC", layout.duration_seconds,
        output_layout.duration_seconds, output, layout, output_layout, renditions=(rendition,),
    )  # fmt: skip


def as_is(
    source: Path, preset: Preset, path: StreamingPath, layout: Mp4Layout | None,
    reason: str | None = None,
) -> OptimizationResult:  # fmt: skip
    """The source itself as the upload, `path` saying why."""
    duration = layout.duration_seconds if layout is not None else None
    return OptimizationResult(
        UploadBody.of_file(source), path, preset, reason, duration, duration, None, layout, layout
    )
