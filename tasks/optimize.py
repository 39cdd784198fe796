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
from tasks.slots import ffmpeg_slot
from upload_jobs.errors import SourceMissing
from upload_jobs.jobs.leases import check_lease
from upload_jobs.jobs.live_progress import Phase, ProgressTarget
from upload_jobs.jobs.measurement import NOTHING_KNOWN, MeasuredLayouts
from upload_jobs.jobs.progress import ProgressReport
from upload_jobs.media.streaming import OptimizationResult, StreamingPath
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
    """Make the source stream-ready: as it is, its index moved in process, or remuxed by ffmpeg
    into the attempt's folder, validated; fails on any doubt."""
    settings = get_settings()
    logger = get_run_logger()
    logged_text_kept_as_text()  # the ffmpeg command is logged below
    log_progress = ProgressReport(logger.info, f"Remux ({preset})")
    live = live_progress(
        progress_target, Phase.OPTIMIZING, f"Remux of {Path(source_path).name} ({preset})"
    )

    def on_progress(percent: float) -> None:
        check_lease()  # stopped or lost: ffmpeg is killed, its output removed
        log_progress.percent(percent)
        live.percent(percent)

    with ffmpeg_slot():
        result = make_stream_ready(
            Path(source_path),
            Path(attempt_work_dir),
            preset,
            settings.ffmpeg,
            in_process=settings.faststart_in_process,
            timeout_seconds=settings.ffmpeg_timeout_seconds,
            on_progress=on_progress,
            on_command=lambda args: logger.info("Running %s", shlex.join(args)),
        )
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
    else:
        logger.info("Preset %s: no optimization requested", preset)
    if result.reason and result.path is not StreamingPath.FFMPEG_REMUX:
        logger.warning("Only the layout was made stream-ready: %s", result.reason)
    return result


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

    @property
    def optimized(self) -> bool:
        """Whether the upload streams."""
        return self.path.streams


def choose_upload_file(source_path: str, optimization: State) -> UploadChoice:
    """The optimized upload when the step completed, else the original with the reason why."""
    if optimization.is_completed():
        result: OptimizationResult = optimization.result()
        layouts = MeasuredLayouts(result.source_layout, result.upload_layout)
        return UploadChoice(result.body, result.path, result.reason, layouts=layouts)
    error = optimization.result(raise_on_failure=False)
    reason = str(error) if isinstance(error, BaseException) else (optimization.message or "unknown")
    get_run_logger().warning(
        "Streaming optimization failed, uploading the original file instead: %s", reason
    )
    try:
        body = UploadBody.of_file(Path(source_path))
    except FileNotFoundError:
        raise SourceMissing(source_path) from None
    # An unexpected exception (a bug, not bad media) is counted apart from the media's failures.
    kind = getattr(error, "fallback_kind", "internal")
    return UploadChoice(body, StreamingPath.FALLBACK_ORIGINAL, reason, kind)
