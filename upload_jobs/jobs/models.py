"""SQLModel tables `upload_job` and `upload_attempt` (a contract: outside checks read them)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Float, Index, Integer, String, Text
from sqlmodel import Field, SQLModel


class JobStatus(StrEnum):
    """Where an upload job stands."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


class AttemptOutcome(StrEnum):
    """How one run of a job ended."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # stopped by a signal, a cancellation or a shutdown


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (SQLite hands it back naive; see `as_utc`)."""
    return datetime.now(UTC)


def as_utc(moment: datetime | None) -> datetime | None:
    """Attach UTC to a naive datetime read back from SQLite; PostgreSQL keeps the zone."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _timestamp(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


class UploadJob(SQLModel, table=True):
    """One video to get onto Spaces, retried until it is there or gives a clear reason."""

    __tablename__ = "upload_job"
    # A key belongs to one job (migration 0004): no job's upload can replace another's video.
    __table_args__ = (Index("uq_upload_job_object_key", "object_key", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    source_path: str = Field(sa_column=Column(Text, nullable=False))
    object_key: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(
        default=JobStatus.PENDING, sa_column=Column(String(16), nullable=False, index=True)
    )
    attempts: int = Field(default=0, nullable=False)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    error_kind: str | None = Field(default=None, sa_column=Column(String(32)))
    optimized_for_streaming: bool = Field(default=False, nullable=False)
    optimization_preset: str | None = Field(default=None, sa_column=Column(String(16)))
    # The preset this job asks for (`add`/`retry --preset`); None: UPLOAD_JOBS_PRESET's.
    requested_preset: str | None = Field(default=None, sa_column=Column(String(16)))
    source_size_bytes: int | None = Field(default=None, sa_column=Column(BigInteger))
    uploaded_size_bytes: int | None = Field(default=None, sa_column=Column(BigInteger))
    public_url: str | None = Field(default=None, sa_column=Column(Text))
    etag: str | None = Field(default=None, sa_column=Column(String(128)))
    lease_owner: str | None = Field(default=None, sa_column=Column(String(255)))
    lease_expires_at: datetime | None = _timestamp()
    next_attempt_at: datetime | None = _timestamp()
    created_at: datetime | None = _timestamp(nullable=False)
    updated_at: datetime | None = _timestamp(nullable=False)
    completed_at: datetime | None = _timestamp()


class UploadAttempt(SQLModel, table=True):
    """One run of a job: which flow run, how long each step took, what happened."""

    __tablename__ = "upload_attempt"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="upload_job.id", index=True, nullable=False)
    attempt_number: int = Field(nullable=False)
    flow_run_id: str | None = Field(default=None, sa_column=Column(String(64)))
    lease_owner: str | None = Field(default=None, sa_column=Column(String(255)))
    outcome: str = Field(
        default=AttemptOutcome.RUNNING, sa_column=Column(String(16), nullable=False)
    )
    optimized: bool = Field(default=False, nullable=False)
    optimization_preset: str | None = Field(default=None, sa_column=Column(String(16)))
    fallback_reason: str | None = Field(default=None, sa_column=Column(Text))
    # The fallback's failure as a word to count by (OptimizationFailed.fallback_kind).
    fallback_kind: str | None = Field(default=None, sa_column=Column(String(32)))
    # How the upload was made stream-ready (media.streaming.StreamingPath) and why not a cheaper
    # way: already_ready, moved_in_process, ffmpeg_remux (with the reason), fallback_original.
    optimization_path: str | None = Field(default=None, sa_column=Column(String(24)))
    optimization_path_reason: str | None = Field(default=None, sa_column=Column(Text))
    skipped_existing_object: bool = Field(default=False, nullable=False)
    error: str | None = Field(default=None, sa_column=Column(Text))
    error_kind: str | None = Field(default=None, sa_column=Column(String(32)))
    source_size_bytes: int | None = Field(default=None, sa_column=Column(BigInteger))
    uploaded_size_bytes: int | None = Field(default=None, sa_column=Column(BigInteger))
    # Written before the transfer starts: a run that dies after uploading leaves this behind,
    # and reconcile recognises its object by it (with uploaded_size_bytes and optimized).
    upload_sha256: str | None = Field(default=None, sa_column=Column(String(64)))
    # Written before the first part: a later attempt sending the same bytes (same sha256 and
    # size) resumes this multipart upload, and the sweep leaves it alone while it may.
    multipart_upload_id: str | None = Field(default=None, sa_column=Column(Text))
    multipart_part_bytes: int | None = Field(default=None, sa_column=Column(BigInteger))
    # When the upload replaced the job's earlier object: whether the CDN was told to forget it.
    cdn_purge: str | None = Field(default=None, sa_column=Column(String(16)))
    cdn_purge_detail: str | None = Field(default=None, sa_column=Column(Text))
    step_seconds: dict[str, float] | None = Field(default=None, sa_column=Column(JSON))
    # What went up, per rendition (media.renditions.RenditionSummary.as_json: width, height,
    # bitrate, size, PSNR, SSIM); the preset levels that failed before the one that made it
    # ({preset, kind, reason}); the objects an HLS upload stored (1 for an MP4).
    renditions: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    declined_levels: list[dict[str, str]] | None = Field(default=None, sa_column=Column(JSON))
    uploaded_object_count: int | None = Field(default=None, sa_column=Column(Integer))
    # What the optimization bought (media.startup, README "Startup cost"): the bytes a player
    # reads from byte 0 before the first frame, where moov lies, and the range requests a
    # seeking player needs, for the source and for what was uploaded; and how long the
    # optimize step took.
    remux_seconds: float | None = Field(default=None, sa_column=Column(Float))
    source_startup_bytes: int | None = Field(default=None, sa_column=Column(BigInteger))
    source_moov_offset: int | None = Field(default=None, sa_column=Column(BigInteger))
    source_moov_bytes: int | None = Field(default=None, sa_column=Column(BigInteger))
    source_startup_requests: int | None = Field(default=None, sa_column=Column(Integer))
    uploaded_startup_bytes: int | None = Field(default=None, sa_column=Column(BigInteger))
    uploaded_moov_offset: int | None = Field(default=None, sa_column=Column(BigInteger))
    uploaded_moov_bytes: int | None = Field(default=None, sa_column=Column(BigInteger))
    uploaded_startup_requests: int | None = Field(default=None, sa_column=Column(Integer))
    started_at: datetime | None = _timestamp(nullable=False)
    finished_at: datetime | None = _timestamp()
    # Live progress of a running attempt (the jobs page polls it), written at most ~1/s.
    phase: str | None = Field(default=None, sa_column=Column(String(24)))
    progress_percent: float | None = Field(default=None, sa_column=Column(Float))
    bytes_done: int | None = Field(default=None, sa_column=Column(BigInteger))
    bytes_total: int | None = Field(default=None, sa_column=Column(BigInteger))
    progress_updated_at: datetime | None = _timestamp()

    @property
    def streaming_reason(self) -> str | None:
        """Why the upload went up as it did: a fallback's failure, else why ffmpeg ran."""
        return self.fallback_reason or self.optimization_path_reason
