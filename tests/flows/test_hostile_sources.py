"""Hostile indexes through the flow (moto, SQLite): the job completes, the move refused with its
reason and ffmpeg's remux (or the original) uploaded, the measure step never failing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.flows.test_retry_flow import add_failed_job, media_and_s3_only, run
from tests.support import hostile_mp4
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings

pytestmark = [
    pytest.mark.flow,
    pytest.mark.usefixtures("prefect_server"),
    pytest.mark.moto_only,
    media_and_s3_only,
]


@pytest.mark.parametrize(
    "name", ["1,000 nested trak", "last sample past its mdat", "stco counts too many"]
)
def test_a_hostile_index_completes_its_job_without_an_internal_error(
    settings: Settings, clip_library: dict[str, Path], tmp_path: Path, name: str
) -> None:
    source = hostile_mp4.HOSTILE_SOURCES[name](clip_library["moov_at_end"], tmp_path / "h.mp4")
    job, completed = run(add_failed_job(settings, source))

    assert completed and job.status == JobStatus.COMPLETED, job.last_error
    [attempt] = JobStore(settings.database_url).list_attempts(job.id or 0)
    assert attempt.optimization_path != "moved_in_process"
    assert attempt.fallback_kind != "internal", attempt.fallback_reason
    assert attempt.step_seconds and "measure_file_size" in attempt.step_seconds
