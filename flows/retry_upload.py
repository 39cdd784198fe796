"""`retry_upload_job`: one run of an upload job, as the seven steps the Prefect UI shows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prefect import flow
from prefect.states import Completed, Failed, State

from tasks.cdn import purge_cdn_cache
from tasks.events import emit_attempt_events, emit_failure_event
from tasks.files import check_source_file, cleanup_temp_file, measure_file_size
from tasks.job_steps import steps_of_job
from tasks.jobs import claim_job, mark_job_completed, mark_job_failed
from tasks.optimize import choose_upload_file, optimize_for_streaming
from tasks.upload import upload_chosen
from upload_jobs.errors import error_kind_for
from upload_jobs.jobs.attempt_report import AttemptReport, StoredObject
from upload_jobs.jobs.claims import ClaimedJob, ClaimRefused
from upload_jobs.jobs.files import attempt_work_dir
from upload_jobs.jobs.leases import HeldLease
from upload_jobs.jobs.models import UploadJob
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import get_settings
from upload_jobs.storage.spaces import public_url


@flow(name="retry-upload-job", flow_run_name="retry-upload-job-{job_id}")
def retry_upload_job(job_id: int) -> UploadJob | State:
    """Claim the job, check, optimize, measure and upload its video, mark it, clean up.

    A run with nothing to do (the job is completed, or another run holds it) ends Completed,
    saying so; one for an unknown job, or whose source cannot be uploaded at all, ends Failed
    in one line (the source's problem recorded on the job, no attempt spent).
    """
    try:
        return run_upload_steps(job_id)
    except ClaimRefused as refused:
        if refused.nothing_to_do:
            return Completed(message=refused.sentence(), name=refused.state_name)
        return Failed(message=refused.sentence())


def run_upload_steps(job_id: int) -> UploadJob:
    """The seven steps as task runs of the flow run this is called in, named after the job (a
    sweep runs many jobs' steps in its own run: a flow run per job costs ~0.2 s of server round
    trips, README "Benchmarks")."""
    with steps_of_job(job_id):
        return _upload_steps(job_id)


def _upload_steps(job_id: int) -> UploadJob:
    settings = get_settings()
    claim = claim_job(job_id)
    if isinstance(claim, ClaimRefused):
        if claim.recorded is not None:  # the source's problem, on the job: said as a failure is
            emit_failure_event(claim.recorded)
        raise claim
    report = AttemptReport(preset=str(claim.preset_or(settings.preset)))
    work_dir = attempt_work_dir(Path(settings.work_dir), claim.job_id, claim.attempt_number)
    # Renewed while the steps run; a signal, a cancellation or a shutdown gives the job back.
    lease = HeldLease(
        JobStore(settings.database_url),
        claim,
        report,
        timedelta(seconds=settings.lease_seconds),
        settings.lease_renew_interval,
    )
    try:
        with lease:
            return _steps_holding(claim, report, work_dir, lease)
    finally:
        if lease.released is not None:  # stopped: say so, as a failed attempt says it failed
            emit_attempt_events(lease.released, claim.attempt_number, report)
        cleanup_temp_file(str(work_dir), claim.source_path)


def _steps_holding(
    claim: ClaimedJob, report: AttemptReport, work_dir: Path, lease: HeldLease
) -> UploadJob:
    settings = get_settings()
    try:
        with report.step("check_source_file"):
            report.source_size_bytes = check_source_file(claim.source_path)
        with report.step("optimize_for_streaming"):
            optimization = optimize_for_streaming(
                claim.source_path,
                str(work_dir),
                claim.preset_or(settings.preset),
                claim.progress_target,
                return_state=True,
            )
            choice = choose_upload_file(claim.source_path, optimization)
            report.record_choice(choice.path, choice.reason, choice.fallback_kind)
            report.record_renditions(choice.renditions, choice.declined)
        with report.step("measure_file_size"):
            measured = measure_file_size(
                claim.source_path, choice.body, choice.layouts, choice.package
            )
            report.record_measurement(measured)
        with report.step("upload_to_spaces"):
            uploaded = upload_chosen(choice, claim)
            report.uploaded_object_count = uploaded.object_count
    except Exception as exc:
        failed = mark_job_failed(claim, report, str(exc), error_kind_for(exc))
        emit_attempt_events(failed, claim.attempt_number, report)
        raise
    # Outside the except above on purpose: the object is in the bucket now, so a failure to
    # record it must not mark the job failed; the lease runs out and the next run finds the
    # object by size and sha256 without uploading again.
    if uploaded.replaced:  # the CDN may still serve the bytes it replaced
        purge = purge_cdn_cache(uploaded.cdn_path)
        report.cdn_purge, report.cdn_purge_detail = purge.outcome, purge.detail
    stored = StoredObject(
        public_url(settings, uploaded.key), uploaded.etag, uploaded.skipped_existing
    )
    lease.check()  # a run that lost its job (or was stopped) records nothing more
    completed = mark_job_completed(claim, report, stored)
    emit_attempt_events(completed, claim.attempt_number, report)
    return completed
