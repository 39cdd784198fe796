"""The streaming optimization task, and how the flow falls back when it fails."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from prefect import get_run_logger, task
from prefect.states import State

from tasks.job_steps import step_run_name
from tasks.progress import live_progress
from tasks.slots import ffmpeg_slot
from upload_jobs.jobs.leases import check_lease
from upload_jobs.jobs.live_progress import Phase, ProgressTarget
from upload_jobs.jobs.progress import ProgressReport
from upload_jobs.media import remux
from upload_jobs.settings import Preset, get_settings


@task(name="optimize_for_streaming", task_run_name=step_run_name)
def optimize_for_streaming(
    source_path: str,
    attempt_work_dir: str,
    preset: Preset,
    progress_target: ProgressTarget | None = None,
) -> remux.OptimizationResult:
    """Remux the source for streaming into the attempt's folder, validated; fails on any doubt."""
    settings = get_settings()
    logger = get_run_logger()
    log_progress = ProgressReport(logger.info, f"Remux ({preset})")
    live = live_progress(
        progress_target, Phase.OPTIMIZING, f"Remux of {Path(source_path).name} ({preset})"
    )

    def on_progress(percent: float) -> None:
        check_lease()  # stopped or lost: ffmpeg is killed, its output removed
        log_progress.percent(percent)
        live.percent(percent)

    with ffmpeg_slot():
        result = remux.optimize_for_streaming(
            Path(source_path),
            Path(attempt_work_dir),
            preset,
            remux.resolve_ffmpeg(settings.ffmpeg),
            timeout_seconds=settings.ffmpeg_timeout_seconds,
            on_progress=on_progress,
            on_command=lambda args: logger.info("Running %s", shlex.join(args)),
        )
    if result.already_optimized:
        logger.info("Source is already stream-ready (%s): uploading it as it is", preset)
    elif result.remuxed:
        logger.info("Remuxed for streaming with preset %s: %s", preset, result.path.name)
    else:
        logger.info("Preset %s: no optimization requested", preset)
    return result


@dataclass(frozen=True)
class UploadChoice:
    """Which file the run uploads, and whether it counts as optimized for streaming."""

    path: str
    optimized: bool
    fallback_reason: str | None


def choose_upload_file(source_path: str, optimization: State) -> UploadChoice:
    """The optimized file when the step completed, else the original with the reason why."""
    if optimization.is_completed():
        result: remux.OptimizationResult = optimization.result()
        optimized = result.remuxed or result.already_optimized
        return UploadChoice(path=str(result.path), optimized=optimized, fallback_reason=None)
    error = optimization.result(raise_on_failure=False)
    reason = str(error) if isinstance(error, BaseException) else (optimization.message or "unknown")
    get_run_logger().warning(
        "Streaming optimization failed, uploading the original file instead: %s", reason
    )
    return UploadChoice(path=source_path, optimized=False, fallback_reason=reason)
