"""`retry_upload_job`: one run of an upload job, as the seven steps the Prefect UI shows."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.files import check_source_file, cleanup_temp_file, measure_file_size
from tasks.jobs import claim_job, mark_job_completed, mark_job_failed
from tasks.optimize import choose_upload_file, optimize_for_streaming
from tasks.upload import upload_task_for
from upload_jobs.errors import error_kind_for
from upload_jobs.files import attempt_work_dir
from upload_jobs.models import UploadJob
from upload_jobs.settings import get_settings
from upload_jobs.spaces import public_url
from upload_jobs.store import CompletedUpload, FailedUpload
from upload_jobs.timing import StepTimer


@flow(name="retry-upload-job", flow_run_name="retry-upload-job-{job_id}")
def retry_upload_job(job_id: int) -> UploadJob:
    """Claim the job, check, optimize, measure and upload its video, mark it, clean up."""
    settings = get_settings()
    claim = claim_job(job_id)
    timer = StepTimer()
    work_dir = attempt_work_dir(Path(settings.work_dir), claim.job_id, claim.attempt_number)
    source_size: int | None = None
    fallback_reason: str | None = None
    try:
        try:
            with timer.step("check_source_file"):
                source_size = check_source_file(claim.source_path)
            with timer.step("optimize_for_streaming"):
                optimization = optimize_for_streaming(
                    claim.source_path, str(work_dir), settings.preset, return_state=True
                )
                choice = choose_upload_file(claim.source_path, optimization)
                fallback_reason = choice.fallback_reason
            with timer.step("measure_file_size"):
                upload_size = measure_file_size(choice.path)
            with timer.step("upload_to_spaces"):
                uploaded = upload_task_for(settings)(choice.path, claim.object_key)
        except Exception as exc:
            mark_job_failed(
                claim,
                FailedUpload(
                    error=str(exc),
                    error_kind=error_kind_for(exc),
                    source_size_bytes=source_size,
                    fallback_reason=fallback_reason,
                    step_seconds=timer.seconds,
                ),
            )
            raise
        # Outside the except above on purpose: the object is in the bucket now, so a failure to
        # record it must not mark the job failed; the lease runs out and the next run finds the
        # object by size and sha256 without uploading again.
        return mark_job_completed(
            claim,
            CompletedUpload(
                public_url=public_url(settings, claim.object_key),
                etag=uploaded.etag,
                source_size_bytes=source_size,
                uploaded_size_bytes=upload_size,
                optimized=choice.optimized,
                optimization_preset=str(settings.preset),
                fallback_reason=fallback_reason,
                skipped_existing_object=uploaded.skipped_existing,
                step_seconds=timer.seconds,
            ),
        )
    finally:
        cleanup_temp_file(str(work_dir), claim.source_path)
