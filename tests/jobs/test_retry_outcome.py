"""How a retry run that found nothing to do is told, whatever the job became meanwhile."""

from __future__ import annotations

from datetime import timedelta

from upload_jobs.jobs.attempt_report import AttemptReport, StoredObject
from upload_jobs.jobs.claims import ALREADY_COMPLETED_STATE, HELD_ELSEWHERE_STATE
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.retry_outcome import finished_run_outcome
from upload_jobs.jobs.store import JobStore

REPORT = AttemptReport(preset="faststart", source_size_bytes=100, uploaded_size_bytes=90)


def completed_by_another_run(store: JobStore) -> int:
    job = store.add_job("/v/a.mp4", "videos/a.mp4", status=JobStatus.FAILED)
    assert job.id is not None
    claim = store.claim_job(job.id, "winner", timedelta(minutes=10), flow_run_id="winner-run")
    store.mark_completed(claim, REPORT, StoredObject(public_url="https://cdn/a.mp4", etag="e"))
    return job.id


def test_a_run_that_met_the_lease_failed_though_the_holder_finished_since(
    database_url: str,
) -> None:
    store = JobStore(database_url)
    job_id = completed_by_another_run(store)
    said = f"Upload job {job_id} is already in progress (held by winner): nothing to do."
    outcome = finished_run_outcome(store, job_id, "loser-run", True, said, HELD_ELSEWHERE_STATE)
    assert (outcome.succeeded, outcome.message) == (False, said)


def test_a_run_that_found_the_job_done_succeeded(database_url: str) -> None:
    store = JobStore(database_url)
    job_id = completed_by_another_run(store)
    said = f"Upload job {job_id} is already completed: nothing to do."
    for name in (ALREADY_COMPLETED_STATE, None):  # None: a run from before states were named
        outcome = finished_run_outcome(store, job_id, "late-run", True, said, name)
        assert (outcome.succeeded, outcome.message) == (True, said)
