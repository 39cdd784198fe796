"""Tasks around files: the source check, the size, the cleanup of temp files."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task

from tasks.job_steps import step_run_name
from upload_jobs.jobs import files
from upload_jobs.jobs.measurement import (
    NOTHING_KNOWN,
    MeasuredLayouts,
    UploadMeasurement,
    measure_upload,
)
from upload_jobs.media.hls import HlsPackage
from upload_jobs.media.startup import describe_startup
from upload_jobs.storage.upload_body import UploadBody


@task(name="check_source_file", task_run_name=step_run_name)
def check_source_file(source_path: str) -> int:
    """Fail the run with a clear reason when the source is missing, empty or unreadable."""
    size = files.check_source_file(source_path)
    get_run_logger().info("Source file found: %s (%s)", source_path, files.format_megabytes(size))
    return size


@task(name="measure_file_size", task_run_name=step_run_name)
def measure_file_size(
    source_path: str,
    body: UploadBody,
    known: MeasuredLayouts = NOTHING_KNOWN,
    package: HlsPackage | None = None,
) -> UploadMeasurement:
    """The size of what is about to be uploaded, logged as `File size: N.NN MB`, and the bytes a
    player fetches before the first frame, of the source and of the upload (from the layouts
    the optimize step read, where `known`); for HLS, every file of the `package`."""
    measured = measure_upload(Path(source_path), body, known, package)
    logger = get_run_logger()
    logger.info("File size: %s", files.format_megabytes(measured.size_bytes))
    logger.info("Startup: %s", describe_startup(measured.source_startup, measured.uploaded_startup))
    if measured.unmeasured:
        logger.warning("Startup cost not measured: %s", measured.unmeasured)
    return measured


@task(name="cleanup_temp_file", task_run_name=step_run_name)
def cleanup_temp_file(attempt_work_dir: str, source_path: str) -> bool:
    """Remove this attempt's temp folder; runs whether the attempt succeeded or not."""
    removed = files.remove_attempt_work_dir(Path(attempt_work_dir), source_path)
    get_run_logger().info(
        "Removed temp files in %s" if removed else "No temp files to remove in %s",
        attempt_work_dir,
    )
    return removed
