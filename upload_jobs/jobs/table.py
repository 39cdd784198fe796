"""The job table at one database URL: what every part of the store starts from."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlmodel import col

from upload_jobs.errors import JobNotFound
from upload_jobs.jobs.database import session_for
from upload_jobs.jobs.models import AttemptOutcome, UploadAttempt, UploadJob


class JobTable:
    """Jobs and attempts in the database at `database_url`."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def get_job(self, job_id: int) -> UploadJob:
        """The job with this id, or `JobNotFound`."""
        with session_for(self.database_url) as session:
            job = session.get(UploadJob, job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def update_running_attempt(self, attempt_id: int, **values: Any) -> None:
        """Set columns of an attempt that is still running; a finished one is left as it ended."""
        record = (
            update(UploadAttempt)
            .where(col(UploadAttempt.id) == attempt_id)
            .where(col(UploadAttempt.outcome) == AttemptOutcome.RUNNING)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        with session_for(self.database_url) as session:
            session.connection().execute(record)
            session.commit()
