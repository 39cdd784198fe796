"""The streaming optimization task, and how the flow falls back when it fails."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from prefect import get_run_logger, task
from prefect.states import State

from tasks.console import logged_text_kept_as_text
from tasks.job_steps import step_run_name
from tasks.progress import live_progress
from tasks.slots import ffmpeg_slot, transcode_slot
from upload_jobs.errors import SourceMissing
from upload_jobs.jobs.leases import check_lease
from upload_jobs.jobs.live_progress import Phase, ProgressTarget
from upload_jobs.jobs.measurement import NOTHING_KNOWN, MeasuredLayouts
from upload_jobs.jobs.progress import ProgressReport
from upload_jobs.media.encoding import EncoderSettings
from upload_jobs.media.hls import HlsPackage
from upload_jobs.media.renditions import RenditionSummary, describe_renditions
from upload_jobs.media.streaming import (
    DeclinedLevel,
    OptimizationResult,
    StreamingOptions,
    StreamingPath,
)
from upload_jobs.media.streaming import optimize_for_streaming as make_stream_ready
from upload_jobs.settings import Preset, get_settings
from upload_jobs.storage.upload_body import UploadBody


@task(name="optimize_for_streaming", task_run_name=step_run_name)
def optimize_for_streaming(
    source_path: str,
    attempt_work_dir: str,
    preset: Preset,
    progress_target: ProgressTarget | None = None,
) -> OptimizationResult:
    """Make the source stream-ready for `preset`: as it is, its index moved in process, remuxed
    or re-encoded by ffmpeg, or packaged as HLS, into the attempt's folder, validated; a level
    that fails falls back to the next; fails when the last does."""
    logger = get_run_logger()
    logged_text_kept_as_text()  # the ffmpeg command is logged below
    work = "Encoding" if preset.many_objects else "Remux"
    log_progress = ProgressReport(logger.info, f"{work} ({preset})")
    live = live_progress(
        progress_target, Phase.OPTIMIZING, f"{work} of {Path(source_path).name} ({preset})"
    )

    def on_progress(percent: float) -> None:
        check_lease()  # stopped or lost: ffmpeg is killed, its output removed
        log_progress.percent(percent)
        live.percent(percent)

    def on_declined(level: DeclinedLevel) -> None:
        logger.warning("Preset level %s failed, trying the next: %s", level.preset, level.reason)

    with ffmpeg_slot():
        result = make_stream_ready(
            Path(source_path),
            Path(attempt_work_dir),
            preset,
            get_settings().ffmpeg,
            options=streaming_options(),
            on_progress=on_progress,
            on_command=lambda args: logger.info("Running %s", shlex.join(args)),
            on_declined=on_declined,
        )
    _log_result(result)
    return result


def streaming_options() -> StreamingOptions:
    """The optimization's options from settings, re-encodes bounded by this process's slots."""
    settings = get_settings()
    return StreamingOptions(
        in_process=settings.faststart_in_process,
        transcode_unplayable=settings.transcode_unplayable,
        encoder=EncoderSettings(settings.transcode_threads, transcode_slot),
        segment_seconds=settings.hls_segment_seconds,
        quality_sample_seconds=settings.quality_sample_seconds,
        timeout_seconds=settings.ffmpeg_timeout_seconds,
    )


def _log_result(result: OptimizationResult) -> None:
    logger, preset = get_run_logger(), result.preset
    if result.path is StreamingPath.ALREADY_READY:
        logger.info("Source is already stream-ready (%s): uploading it as it is", preset)
    elif result.path is StreamingPath.MOVED_IN_PROCESS:
        logger.info(
            "Moved the index (moov) to the front in process: the upload is read straight from "
            "%s, no temp file and no ffmpeg run",
            result.body.path.name,
        )
    elif result.path is StreamingPath.FFMPEG_REMUX:
        logger.info("Remuxed for streaming with preset %s (%s)", preset, result.reason)
    elif result.path is StreamingPath.TRANSCODED:
        logger.info(
            "Re-encoded for every browser with preset %s (%s): %s",
            preset, result.reason, describe_renditions(result.renditions),
        )  # fmt: skip
    elif result.package is not None:
        logger.info("Packaged as HLS (%s): %s", result.path, describe_renditions(result.renditions))
    else:
        logger.info("Preset %s: no optimization requested", preset)
    if result.reason and result.path in (
        StreamingPath.ALREADY_READY,
        StreamingPath.MOVED_IN_PROCESS,
    ):
        logger.warning("Only the layout was made stream-ready: %s", result.reason)


@dataclass(frozen=True)
class UploadChoice:
    """What the run uploads, how it was made, and whether it counts as optimized for streaming."""

    body: UploadBody
    path: StreamingPath
    reason: str | None
    # For a fallback: the failure's kind (`OptimizationFailed.fallback_kind`).
    fallback_kind: str | None = None
    # What the optimize step read of the source and of the upload (the measure step's input).
    layouts: MeasuredLayouts = NOTHING_KNOWN
    # An HLS upload: the package whose files go up (`body` is its master playlist).
    package: HlsPackage | None = None
    renditions: tuple[RenditionSummary, ...] = ()
    # The preset levels that failed before this one (or, for the original, all of them).
    declined: tuple[DeclinedLevel, ...] = ()

    @property
    def optimized(self) -> bool:
        """Whether the upload streams."""
        return self.path.streams


def choose_upload_file(source_path: str, optimization: State) -> UploadChoice:
    """The optimized upload when the step completed, else the original with the reason why."""
    if optimization.is_completed():
        result: OptimizationResult = optimization.result()
        layouts = MeasuredLayouts(result.source_layout, result.upload_layout)
        return UploadChoice(
            result.body, result.path, result.reason, layouts=layouts, package=result.package,
            renditions=result.renditions, declined=result.declined,
        )  # fmt: skip
    error = optimization.result(raise_on_failure=False)
    reason = str(error) if isinstance(error, BaseException) else (optimization.message or "unknown")
    declined = tuple(d for d in getattr(error, "declined", ()) if isinstance(d, DeclinedLevel))
    if len(declined) > 1:  # every level failed: say why each did
        reason = "; ".join(level.sentence() for level in declined)
    get_run_logger().warning(
        "Streaming optimization failed, uploading the original file instead: %s", reason
    )
    try:
        body = UploadBody.of_file(Path(source_path))
    except FileNotFoundError:
        raise SourceMissing(source_path) from None
    # An unexpected exception (a bug, not bad media) is counted apart from the media's failures.
    kind = getattr(error, "fallback_kind", "internal")
    return UploadChoice(body, StreamingPath.FALLBACK_ORIGINAL, reason, kind, declined=declined)
