"""What the JSON API returns: jobs, attempts and retry outcomes, shaped for the page."""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from upload_jobs.jobs.models import JobStatus, UploadAttempt, UploadJob, as_utc
from upload_jobs.jobs.streaming_stats import recorded_startup
from upload_jobs.media.startup import describe_startup

# `starting`: the page serves while where retries run is still being decided (Prefect starts).
RetryMode = Literal["deployment", "local", "starting"]


class ProgressView(BaseModel):
    """The running attempt's latest progress, as the flow last wrote it."""

    phase: str
    percent: float | None
    bytes_done: int | None
    bytes_total: int | None
    updated_at: datetime | None


class JobView(BaseModel):
    """One row of the jobs table."""

    id: int
    file_name: str
    source_path: str
    object_key: str
    status: JobStatus
    queued: bool
    optimized: bool
    optimization_preset: str | None
    source_size_bytes: int | None
    uploaded_size_bytes: int | None
    attempts: int
    last_error: str | None
    error_kind: str | None
    public_url: str | None
    flow_run_id: str | None
    flow_run_url: str | None
    updated_at: datetime | None
    progress: ProgressView | None


class AttemptView(BaseModel):
    """One run of a job, for the detail view's history (read straight off `UploadAttempt`)."""

    model_config = ConfigDict(from_attributes=True)

    attempt_number: int
    flow_run_id: str | None
    flow_run_url: str | None = None
    outcome: str
    optimized: bool
    fallback_reason: str | None
    fallback_kind: str | None
    optimization_path: str | None
    optimization_path_reason: str | None
    remux_seconds: float | None
    source_startup_bytes: int | None
    uploaded_startup_bytes: int | None
    skipped_existing_object: bool
    error: str | None
    error_kind: str | None
    source_size_bytes: int | None
    uploaded_size_bytes: int | None
    step_seconds: dict[str, float] | None
    started_at: datetime | None
    finished_at: datetime | None

    @field_validator("started_at", "finished_at")
    @classmethod
    def _in_utc(cls, moment: datetime | None) -> datetime | None:
        return as_utc(moment)


class StartupView(BaseModel):
    """What a player fetches before the first frame of one file (README "Startup cost")."""

    model_config = ConfigDict(from_attributes=True)

    startup_bytes: int
    moov_offset: int
    moov_bytes: int
    range_requests: int


class StreamingView(BaseModel):
    """How the newest attempt that got this far made its upload stream-ready, and what it bought."""

    attempt_number: int
    path: str | None
    reason: str | None
    fallback_kind: str | None
    source: StartupView | None
    uploaded: StartupView | None
    summary: str
    remux_seconds: float | None
    # What went up per rendition (width, height, bitrate, psnr, ssim...), the preset levels
    # passed over on the way ({preset, kind, reason}), and the objects it is made of.
    renditions: list[dict[str, Any]] = []
    declined: list[dict[str, str]] = []
    object_count: int | None = None


class JobDetailView(JobView):
    """A job with every attempt, oldest first, and its streaming figures."""

    attempt_history: list[AttemptView]
    streaming: StreamingView | None


class JobPageView(BaseModel):
    """A page of the jobs table with the numbers the header and the pager show."""

    jobs: list[JobView]
    total: int
    page: int
    per_page: int
    pages: int
    counts: dict[str, int]
    retry_mode: RetryMode
    prefect_ui_url: str | None


class RetryAccepted(BaseModel):
    """A retry was queued: where it runs and, when known already, its flow run."""

    job_id: int
    message: str
    flow_run_id: str | None
    flow_run_url: str | None
    mode: RetryMode


class SkippedJob(BaseModel):
    """A failed job "retry all" left alone, and why."""

    id: int
    reason: str


class RetryAllAccepted(BaseModel):
    """What "retry all failed" queued and what it skipped."""

    queued: int
    job_ids: list[int]
    skipped: list[SkippedJob]
    message: str


class ApiError(BaseModel):
    """Why a request was refused, in words a person can act on."""

    detail: str
    error_kind: str | None = None


def flow_run_link(ui_url: str | None, flow_run_id: str | None) -> str | None:
    """The flow run's page in the Prefect UI, when there is a UI to open."""
    if not ui_url or not flow_run_id:
        return None
    return f"{ui_url}/runs/flow-run/{flow_run_id}"


def job_view(
    job: UploadJob, latest: UploadAttempt | None, ui_url: str | None, queued: bool
) -> JobView:
    """The table row for `job`, with its latest run's link and live progress."""
    assert job.id is not None
    flow_run_id = latest.flow_run_id if latest else None
    return JobView(
        id=job.id,
        file_name=PurePath(job.source_path).name,
        source_path=job.source_path,
        object_key=job.object_key,
        status=JobStatus(job.status),
        queued=queued,
        optimized=job.optimized_for_streaming,
        optimization_preset=job.optimization_preset,
        source_size_bytes=job.source_size_bytes,
        uploaded_size_bytes=job.uploaded_size_bytes,
        attempts=job.attempts,
        last_error=job.last_error,
        error_kind=job.error_kind,
        public_url=job.public_url,
        flow_run_id=flow_run_id,
        flow_run_url=flow_run_link(ui_url, flow_run_id),
        updated_at=as_utc(job.updated_at),
        progress=_progress(job, latest),
    )


def attempt_view(attempt: UploadAttempt, ui_url: str | None) -> AttemptView:
    """One line of the detail view's attempt history."""
    view = AttemptView.model_validate(attempt)
    view.flow_run_url = flow_run_link(ui_url, attempt.flow_run_id)
    return view


def streaming_view(attempts: list[UploadAttempt]) -> StreamingView | None:
    """The streaming figures of the newest attempt that chose what to upload."""
    chosen = [attempt for attempt in attempts if attempt.optimization_path]
    if not chosen:
        return None
    attempt = chosen[-1]
    before = recorded_startup(attempt, "source")
    after = recorded_startup(attempt, "uploaded")
    return StreamingView(
        attempt_number=attempt.attempt_number,
        path=attempt.optimization_path,
        reason=attempt.streaming_reason,
        fallback_kind=attempt.fallback_kind,
        source=StartupView.model_validate(before) if before else None,
        uploaded=StartupView.model_validate(after) if after else None,
        summary=describe_startup(before, after),
        remux_seconds=attempt.remux_seconds,
        renditions=attempt.renditions or [],
        declined=attempt.declined_levels or [],
        object_count=attempt.uploaded_object_count,
    )


def _progress(job: UploadJob, latest: UploadAttempt | None) -> ProgressView | None:
    # Only a job that is running now has progress worth showing; a finished attempt keeps its
    # last reading in the table, but the page shows the outcome instead.
    if job.status != JobStatus.IN_PROGRESS or latest is None or latest.phase is None:
        return None
    return ProgressView(
        phase=latest.phase,
        percent=latest.progress_percent,
        bytes_done=latest.bytes_done,
        bytes_total=latest.bytes_total,
        updated_at=as_utc(latest.progress_updated_at),
    )
