"""The upload task: transient failures retried with backoff and jitter, permanent ones not."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prefect import Task, get_run_logger, task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import exponential_backoff
from sqlalchemy.exc import SQLAlchemyError

from tasks.job_steps import step_run_name
from tasks.optimize import UploadChoice
from tasks.progress import live_progress
from tasks.slots import upload_slot
from upload_jobs.errors import TransientUploadError, UploadJobError
from upload_jobs.jobs.claims import ClaimedJob
from upload_jobs.jobs.files import format_megabytes
from upload_jobs.jobs.leases import check_lease
from upload_jobs.jobs.live_progress import Phase, ProgressTarget
from upload_jobs.jobs.progress import ProgressReport
from upload_jobs.jobs.store import JobStore
from upload_jobs.media.hls import HlsPackage
from upload_jobs.media.playlists import MASTER_PLAYLIST
from upload_jobs.settings import Settings, get_settings
from upload_jobs.storage import spaces
from upload_jobs.storage.checksums import file_sha256
from upload_jobs.storage.ownership import KeyOwner
from upload_jobs.storage.packages import (
    PackageTarget,
    PackageUpload,
    package_prefix,
    remove_objects_left_behind,
    upload_package,
)
from upload_jobs.storage.resume import MultipartUpload, digests_of, planned_part_bytes
from upload_jobs.storage.upload_body import UploadBody

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RETRY_JITTER_FACTOR = 0.5


def is_transient_upload_failure(task: Task[Any, Any], task_run: TaskRun, state: State) -> bool:
    """Retry only what a retry can fix: throttling, 5xx, timeouts, dropped connections."""
    return isinstance(state.result(raise_on_failure=False), TransientUploadError)


# One step in the UI whatever goes up (a file or an HLS package): same name, same retries.
UPLOAD_TASK_OPTIONS: dict[str, Any] = {
    "name": "upload_to_spaces",
    "task_run_name": step_run_name,
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": RETRY_JITTER_FACTOR,
    "retry_condition_fn": is_transient_upload_failure,
}


@task(**UPLOAD_TASK_OPTIONS)
def upload_to_spaces(
    body: UploadBody,
    object_key: str,
    progress_target: ProgressTarget,
    optimized: bool = False,
    earlier_package: bool = False,
) -> spaces.UploadResult:
    """Upload the body to the bucket for the job of `progress_target` (multipart when large,
    resuming what its last try stored), unless the key holds another's object, and verify it
    with a HEAD; `optimized` says whether `body` is the streaming-optimized source. After an
    `earlier_package` (HLS), the job's own objects under its key prefix are removed."""
    settings = get_settings()
    logger = get_run_logger()
    client = spaces.make_s3_client(settings)
    job_id = progress_target.job_id
    resume = resumable_upload(job_id)
    digests = digests_of(
        body,
        planned_part_bytes(
            body.size, settings.multipart_threshold_bytes, settings.multipart_chunk_bytes, resume
        ),
    )
    owner = KeyOwner(job_id, uploaded_before(job_id))
    record_upload_intent(progress_target, body.size, digests.sha256, optimized)
    on_progress = upload_progress(
        progress_target, f"{body.path.name} to s3://{settings.bucket}/{object_key}", body.size
    )
    check_lease()
    with upload_slot():
        result = spaces.upload_video(
            client,
            settings.bucket,
            body,
            object_key,
            owner=owner,
            digests=digests,
            acl=settings.acl,
            cache_control=settings.cache_control,
            multipart_threshold=settings.multipart_threshold_bytes,
            chunk_size=settings.multipart_chunk_bytes,
            concurrency=settings.upload_concurrency,
            on_progress=on_progress,
            resume=resume,
            on_multipart_started=lambda upload: record_multipart_upload(progress_target, upload),
        )
    where = f"s3://{settings.bucket}/{object_key}"
    if result.skipped_existing:
        logger.info("%s already holds this file (same size and sha256): not re-uploaded", where)
    elif result.parts_kept:
        logger.info(
            "Uploaded to %s (ETag %s), resumed: %d parts were stored by an earlier try, %s sent "
            "now", where, result.etag, result.parts_kept, format_megabytes(result.bytes_sent),
        )  # fmt: skip
    else:
        logger.info("Uploaded to %s (ETag %s)", where, result.etag)
    if earlier_package:
        remove_left_behind(client, owner, {object_key}, object_key)
    return result


def upload_progress(target: ProgressTarget, what: str, total_bytes: int) -> Callable[[int], None]:
    """What an upload calls with its bytes done: the lease checked (stopped or lost between
    parts: a multipart upload is kept to resume), the log line and the live progress updated."""
    log_progress = ProgressReport(get_run_logger().info, "Upload", total_bytes=total_bytes)
    live = live_progress(target, Phase.UPLOADING, f"Upload of {what}", total_bytes=total_bytes)

    def on_progress(done: int) -> None:
        check_lease()
        log_progress.bytes_done(done)
        live.bytes_done(done)

    return on_progress


def resumable_upload(job_id: int) -> MultipartUpload | None:
    """The multipart upload the job's last try left open, to continue if the bytes are the same."""
    try:
        return JobStore(get_settings().database_url).resumable_upload(job_id)
    except SQLAlchemyError as exc:
        get_run_logger().warning("Could not read the job's open multipart upload: %s", exc)
        return None


def record_multipart_upload(target: ProgressTarget, upload: MultipartUpload) -> bool:
    """Note the multipart upload on the attempt before its first part, for a later try; whether
    that worked."""
    try:
        JobStore(get_settings().database_url).record_multipart_upload(target.attempt_id, upload)
    except SQLAlchemyError as exc:
        # Unrecorded, nothing could resume it: it is aborted if this try fails.
        get_run_logger().warning("Could not record the multipart upload on the attempt: %s", exc)
        return False
    return True


def uploaded_before(job_id: int) -> frozenset[str]:
    """The sha256s of what the job's attempts set out to upload: its objects from before uploads
    named their job are recognised by them."""
    try:
        return JobStore(get_settings().database_url).upload_sha256s(job_id)
    except SQLAlchemyError as exc:
        # Without them an object of the job's own from then counts as someone else's: the job
        # fails with key_conflict rather than writing over what it cannot prove is its own.
        get_run_logger().warning("Could not read the job's earlier uploads: %s", exc)
        return frozenset()


def record_upload_intent(
    target: ProgressTarget, size_bytes: int, sha256: str, optimized: bool
) -> None:
    """Note what is about to go up, so reconcile can recognise the object if the run dies."""
    try:
        JobStore(get_settings().database_url).record_upload_intent(
            target.attempt_id, size_bytes, sha256, optimized
        )
    except SQLAlchemyError as exc:
        # Only reconcile needs it: a database blip here must not stop the upload. The mark
        # after the upload retries its own writes.
        get_run_logger().warning("Could not record the upload's sha256 on the attempt: %s", exc)


@task(**UPLOAD_TASK_OPTIONS)
def upload_package_to_spaces(
    package: HlsPackage, object_key: str, progress_target: ProgressTarget
) -> PackageUpload:
    """Upload an HLS package under the job's key prefix (the master playlist last; what is
    stored already with the same bytes is skipped, so a retry sends only what is missing), then
    remove the job's own objects the new upload no longer uses."""
    settings = get_settings()
    logger = get_run_logger()
    client = spaces.make_s3_client(settings)
    job_id = progress_target.job_id
    owner = KeyOwner(job_id, uploaded_before(job_id))
    master = package.directory / MASTER_PLAYLIST
    total = package.total_bytes
    # The master playlist is what reconcile looks for should this run die after it went up.
    record_upload_intent(progress_target, master.stat().st_size, file_sha256(master), True)
    prefix = package_prefix(object_key)
    on_progress = upload_progress(
        progress_target,
        f"{len(package.files)} HLS files to s3://{settings.bucket}/{prefix}",
        total,
    )
    target = PackageTarget(
        settings.bucket, prefix, owner, settings.acl, settings.cache_control,
        settings.multipart_threshold_bytes, settings.multipart_chunk_bytes,
        settings.upload_concurrency,
    )  # fmt: skip
    check_lease()
    with upload_slot():
        uploaded = upload_package(client, package.directory, package.files, target, on_progress)
    logger.info(
        "Uploaded %d HLS files to s3://%s/%s (%d already stored with the same bytes), master "
        "playlist last", len(uploaded.keys), settings.bucket, prefix, uploaded.skipped_existing,
    )  # fmt: skip
    remove_left_behind(client, owner, set(uploaded.keys), object_key)
    return uploaded


def remove_left_behind(
    client: S3Client, owner: KeyOwner, keep: set[str], object_key: str
) -> list[str]:
    """Remove the job's own objects its new upload does not use (the MP4 or the HLS files of an
    earlier upload); a failure is a warning: they are the job's own, and the upload stands."""
    settings = get_settings()
    logger = get_run_logger()
    prefix = package_prefix(object_key)
    try:
        removed = remove_objects_left_behind(
            client, settings.bucket, owner, keep, prefix, object_key
        )
    except UploadJobError as exc:
        logger.warning("Could not remove upload job %s's earlier objects: %s", owner.job_id, exc)
        return []
    if removed:
        shown = ", ".join(removed[:3]) + (", ..." if len(removed) > 3 else "")
        logger.info(
            "Removed %d objects of upload job %s's earlier upload (%s)",
            len(removed), owner.job_id, shown,
        )  # fmt: skip
    return removed


def upload_task_for(settings: Settings) -> Task[Any, spaces.UploadResult]:
    """The upload task with the retry count and backoff base from settings."""
    return upload_to_spaces.with_options(**_retries_from(settings))


def package_upload_task_for(settings: Settings) -> Task[Any, PackageUpload]:
    """The HLS package's upload task with the retry count and backoff base from settings."""
    return upload_package_to_spaces.with_options(**_retries_from(settings))


def _retries_from(settings: Settings) -> dict[str, Any]:
    backoff = exponential_backoff(backoff_factor=settings.upload_retry_delay_seconds)
    return {"retries": settings.upload_retries, "retry_delay_seconds": backoff}


@dataclass(frozen=True)
class Uploaded:
    """What the upload step stored: the key players open (the MP4, or the master playlist), its
    ETag, whether it all was there already, whether it replaced an older upload of the job's,
    the path the CDN must forget then, and how many objects it is."""

    key: str
    etag: str
    skipped_existing: bool
    replaced: bool
    cdn_path: str
    object_count: int


def upload_chosen(choice: UploadChoice, claim: ClaimedJob) -> Uploaded:
    """Run the upload task for what the optimize step chose: one file, or an HLS package."""
    settings = get_settings()
    target = claim.progress_target
    if choice.package is not None:
        package = package_upload_task_for(settings)(choice.package, claim.object_key, target)
        master = package.master
        return Uploaded(
            master.key, master.etag, package.skipped_existing == len(package.keys),
            package.replaced, package_prefix(claim.object_key) + "*", len(package.keys),
        )  # fmt: skip
    result = upload_task_for(settings)(
        choice.body, claim.object_key, target, choice.optimized, claim.earlier_package
    )
    return Uploaded(
        result.key, result.etag, result.skipped_existing, result.replaced, claim.object_key, 1
    )
