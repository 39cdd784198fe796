"""A run's state says what happened, however it was started: nothing to do is no failure, an
unknown job and an unusable source end Failed in one line (no traceback), and a source no upload
can start from spends no attempt; sweeps take jobs added and never run, and say what they did."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from flows.retry_upload import retry_upload_job
from flows.sweep import sweep_failed_uploads
from tests.support.settings_env import use_settings
from upload_jobs.jobs.claims import new_lease_owner
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.jobs.sweeping import SweepReport
from upload_jobs.settings import Settings

pytestmark = [
    pytest.mark.flow,
    pytest.mark.usefixtures("prefect_server"),
    pytest.mark.moto_only,  # what the runs say, not what S3 does
]


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every log record of the run that carries a traceback (its logs were captured)."""
    assert any(record.name.startswith("prefect.") for record in caplog.records), "run logs"
    return [record.getMessage() for record in caplog.records if record.exc_info]


def test_a_run_for_a_completed_job_ends_completed_saying_nothing_to_do(
    settings: Settings, clip: Callable[[str, str], Path], caplog: pytest.LogCaptureFixture
) -> None:
    store = JobStore(settings.database_url)
    job = store.add_job(str(clip("faststart", "done.mp4")), "videos/done.mp4", JobStatus.COMPLETED)

    state = retry_upload_job(job.id or 0, return_state=True)

    assert (state.is_completed(), state.name) == (True, "AlreadyCompleted")
    assert state.message == f"Upload job {job.id} is already completed: nothing to do."
    assert tracebacks(caplog) == []
    assert store.list_attempts(job.id or 0) == [] and store.get_job(job.id or 0).attempts == 0


def test_a_run_for_a_job_another_run_holds_ends_completed_and_leaves_it_alone(
    settings: Settings, clip: Callable[[str, str], Path], caplog: pytest.LogCaptureFixture
) -> None:
    store = JobStore(settings.database_url)
    job = store.add_job(str(clip("faststart", "held.mp4")), "videos/held.mp4", JobStatus.FAILED)
    store.claim_job(job.id or 0, new_lease_owner("the-other-run"), timedelta(minutes=5))

    state = retry_upload_job(job.id or 0, return_state=True)

    assert (state.is_completed(), state.name) == (True, "HeldElsewhere")
    assert state.message is not None and "is already in progress (held by" in state.message
    assert state.message.endswith(": nothing to do.")
    assert tracebacks(caplog) == []
    held = store.get_job(job.id or 0)
    assert (held.status, held.attempts) == (JobStatus.IN_PROGRESS, 1)


@pytest.mark.parametrize("job_id", [999, -1, 0])
def test_a_run_for_an_unknown_job_fails_in_one_line(
    settings: Settings, caplog: pytest.LogCaptureFixture, job_id: int
) -> None:
    state = retry_upload_job(job_id, return_state=True)

    assert state.is_failed()
    assert state.message == (
        f"Upload job {job_id} not found: nothing to retry (`upload-jobs list` shows the ids)."
    )
    assert tracebacks(caplog) == []


@pytest.mark.parametrize("problem", ["missing", "empty", "not-a-video"])
def test_a_source_no_upload_can_start_from_spends_no_attempt(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture, problem: str
) -> None:
    source = tmp_path / "videos" / f"{problem}.mp4"
    source.parent.mkdir(parents=True)
    if problem == "empty":
        source.touch()
    elif problem == "not-a-video":
        source.write_text("meeting notes\n")
    store = JobStore(settings.database_url)
    job = store.add_job(str(source), f"videos/{problem}.mp4", JobStatus.FAILED)

    for _ in range(3):  # a UI button pressed three times, say
        state = retry_upload_job(job.id or 0, return_state=True)
        assert state.is_failed() and state.message is not None
        assert f"No attempt was spent: fix the file, then run `upload-jobs retry {job.id}`." in (
            state.message
        )

    recorded = store.get_job(job.id or 0)
    kind = {"missing": "source_missing", "empty": "source_empty"}.get(problem, "source_not_video")
    assert (recorded.status, recorded.error_kind, recorded.attempts) == ("failed", kind, 0)
    assert store.list_attempts(job.id or 0) == []
    assert tracebacks(caplog) == []


def test_the_sweep_takes_jobs_added_and_never_run_once_they_have_waited(
    settings: Settings, clip: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JobStore(settings.database_url)
    waited = store.add_job(str(clip("faststart", "added.mp4")), "videos/added.mp4")
    use_settings(monkeypatch, pending_grace_seconds="3600")

    report = sweep_failed_uploads(limit=10)
    assert isinstance(report, SweepReport) and report.picked == []
    assert store.get_job(waited.id or 0).status == JobStatus.PENDING, "not yet: it is new"

    use_settings(monkeypatch, pending_grace_seconds="0")
    report = sweep_failed_uploads(limit=10)

    assert report.completed == [waited.id]
    assert store.get_job(waited.id or 0).status == JobStatus.COMPLETED


def test_a_sweep_says_what_it_did_in_its_run_name_and_final_state(
    settings: Settings, clip: Callable[[str, str], Path], tmp_path: Path
) -> None:
    store = JobStore(settings.database_url)
    store.add_job(str(clip("faststart", "one.mp4")), "videos/one.mp4", JobStatus.FAILED)
    store.add_job(str(tmp_path / "gone.mp4"), "videos/gone.mp4", JobStatus.FAILED)

    state = sweep_failed_uploads(limit=10, return_state=True)

    assert state.is_completed()
    assert state.message == "1 completed, 1 set aside"
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.name == "sweep-local: 1 completed, 1 set aside"


def test_nothing_due_is_said_too(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    state = sweep_failed_uploads(limit=10, return_state=True)
    assert state.is_completed() and state.message == "nothing due"
