"""Reading the job table a page at a time, for the jobs web page and its JSON API."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func
from sqlmodel import col, select

from upload_jobs.jobs.database import session_for
from upload_jobs.jobs.models import JobStatus, UploadAttempt, UploadJob

MAX_PER_PAGE = 500
MAX_JOB_ID = 2**31 - 1  # the id column is a 32-bit integer on PostgreSQL


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a page lists: one status or all, and a piece of the file name."""

    status: JobStatus | None = None
    search: str | None = None


@dataclass(frozen=True)
class JobPage:
    """One page of jobs, newest first, each with its latest attempt, and how many match."""

    jobs: list[UploadJob]
    latest_attempts: dict[int, UploadAttempt]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        """How many pages the matching jobs fill (at least 1, so "page 1 of 1" when empty)."""
        return max(1, math.ceil(self.total / self.per_page))


def read_job_page(database_url: str, job_filter: JobFilter, page: int, per_page: int) -> JobPage:
    """Page `page` (from 1) of the jobs matching `job_filter`: two queries whatever the size."""
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    page = max(1, page)
    matching = select(UploadJob)
    counting = select(func.count()).select_from(UploadJob)
    for condition in _conditions(job_filter):
        matching, counting = matching.where(condition), counting.where(condition)
    listing = matching.order_by(col(UploadJob.id).desc()).offset((page - 1) * per_page)
    with session_for(database_url) as session:
        total = session.exec(counting).one()
        jobs = list(session.exec(listing.limit(per_page)).all())
    attempts = latest_attempts(database_url, [job.id for job in jobs if job.id is not None])
    return JobPage(jobs, attempts, total, page, per_page)


def latest_attempts(database_url: str, job_ids: list[int]) -> dict[int, UploadAttempt]:
    """Each job's newest attempt (its flow run, its live progress), keyed by job id."""
    if not job_ids:
        return {}
    newest = (
        select(UploadAttempt.job_id, func.max(UploadAttempt.attempt_number).label("number"))
        .where(col(UploadAttempt.job_id).in_(job_ids))
        .group_by(col(UploadAttempt.job_id))
        .subquery()
    )
    query = select(UploadAttempt).join(
        newest,
        (col(UploadAttempt.job_id) == newest.c.job_id)
        & (col(UploadAttempt.attempt_number) == newest.c.number),
    )
    with session_for(database_url) as session:
        return {attempt.job_id: attempt for attempt in session.exec(query).all()}


def _conditions(job_filter: JobFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if job_filter.status is not None:
        conditions.append(col(UploadJob.status) == job_filter.status)
    if job_filter.search:
        # autoescape: a name with % or _ in it is searched for literally.
        needle = job_filter.search.lower()
        conditions.append(func.lower(UploadJob.source_path).contains(needle, autoescape=True))
    return conditions
