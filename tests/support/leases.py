"""Leases that ran out, without waiting for them: what a run that died leaves behind."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from upload_jobs.jobs.database import get_engine
from upload_jobs.jobs.models import UploadJob, utcnow


def expire_lease(database_url: str, job_id: int) -> None:
    """The job's lease ran out a second ago."""
    with get_engine(database_url).begin() as connection:
        connection.execute(
            update(UploadJob)
            .where(UploadJob.id == job_id)  # type: ignore[arg-type]
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
