"""Make a source stream-ready the cheapest safe way: as it is, with its index moved in process,
or remuxed by ffmpeg. Which way was taken, and why not a cheaper one, is part of the result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from upload_jobs.errors import OptimizationFailed
from upload_jobs.media.codecs import conversion_needed, unplayable_video
from upload_jobs.media.faststart import FaststartRefused, plan_faststart
from upload_jobs.media.mp4 import Mp4Layout, read_layout
from upload_jobs.media.remux import SourceTruncated, remux_with_ffmpeg, resolve_ffmpeg
from upload_jobs.settings import Preset
from upload_jobs.storage.upload_body import UploadBody


class StreamingPath(StrEnum):
    """How an attempt got its upload stream-ready (recorded as `optimization_path`)."""

    ALREADY_READY = "already_ready"  # the source streams as it is
    MOVED_IN_PROCESS = "moved_in_process"  # moov moved to the front, sent from the source
    FFMPEG_REMUX = "ffmpeg_remux"  # a new file written by ffmpeg in the work dir
    NOT_REQUESTED = "not_requested"  # preset none
    FALLBACK_ORIGINAL = "fallback_original"  # the optimization failed: the original went up

    @property
    def streams(self) -> bool:
        """Whether an upload made this way is stream-ready."""
        return self in (self.ALREADY_READY, self.MOVED_IN_PROCESS, self.FFMPEG_REMUX)


@dataclass(frozen=True)
class OptimizationResult:
    """What to upload after optimizing, how it was made, and what to delete afterwards."""

    body: UploadBody
    path: StreamingPath
    preset: Preset
    # Why the cheaper in-process move was not taken, when ffmpeg ran; why browsers will not play
    # it anyway, when only its layout was made right (video they do not decode).
    reason: str | None
    source_duration_seconds: float | None
    output_duration_seconds: float | None
    temp_path: Path | None
    # The layouts the step read, passed on so the measure step walks neither file again.
    source_layout: Mp4Layout | None = None
    upload_layout: Mp4Layout | None = None


def optimize_for_streaming(
    source: Path,
    work_dir: Path,
    preset: Preset,
    ffmpeg: str | None = None,
    *,
    in_process: bool = True,
    timeout_seconds: float = 3600,
    on_progress: Callable[[float], None] | None = None,
    on_command: Callable[[list[str]], None] | None = None,
) -> OptimizationResult:
    """The upload that makes `source` stream-ready for `preset`: the source itself, the source with
    its index moved (`in_process`, faststart only), or an ffmpeg remux into `work_dir` (`ffmpeg`:
    the configured binary, found as `resolve_ffmpeg` does only when it is needed).

    Never modifies the source; a failure leaves no file and raises OptimizationFailed.
    """
    if preset is Preset.NONE:
        return _as_is(source, preset, StreamingPath.NOT_REQUESTED, None)
    layout = _read_source_layout(source)
    if layout.truncated:
        raise SourceTruncated(f"source is truncated: {layout.truncation}")
    # Video no browser decodes gains nothing from a conversion: its layout is all there is to do.
    unplayable = unplayable_video(layout)
    needed = None if unplayable else conversion_needed(layout)
    layout_ready = layout.is_faststart if preset is Preset.FASTSTART else layout.fragmented
    if layout_ready and needed is None:
        return _as_is(source, preset, StreamingPath.ALREADY_READY, layout, unplayable)
    reason = needed or "the fragmented preset is made by ffmpeg"
    if preset is Preset.FASTSTART and needed is None:
        reason = "the in-process move is turned off (UPLOAD_JOBS_FASTSTART_IN_PROCESS)"
        if in_process:
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
    output, output_layout = remux_with_ffmpeg(
        source,
        layout,
        work_dir,
        preset,
        resolve_ffmpeg(ffmpeg),
        timeout_seconds=timeout_seconds,
        on_progress=on_progress,
        on_command=on_command,
    )
    return OptimizationResult(
        body=UploadBody.of_file(output),
        path=StreamingPath.FFMPEG_REMUX,
        preset=preset,
        reason=reason,
        source_duration_seconds=layout.duration_seconds,
        output_duration_seconds=output_layout.duration_seconds,
        temp_path=output,
        source_layout=layout,
        upload_layout=output_layout,
    )


def _as_is(
    source: Path, preset: Preset, path: StreamingPath, layout: Mp4Layout | None,
    reason: str | None = None,
) -> OptimizationResult:  # fmt: skip
    duration = layout.duration_seconds if layout is not None else None
    return OptimizationResult(
        UploadBody.of_file(source), path, preset, reason, duration, duration, None, layout, layout
    )


def _read_source_layout(source: Path) -> Mp4Layout:
    try:
        return read_layout(source)
    except OSError as exc:
        raise OptimizationFailed(f"cannot read source {source}: {exc.strerror or exc}") from exc
