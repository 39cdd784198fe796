"""`sweep_failed_uploads` in local mode on a real Prefect server, S3 server and database."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client

from flows.sweep import sweep_failed_uploads
from tests.conftest import one_database
from tests.support.leases import expire_lease
from tests.support.s3_backends import S3Backend
from tests.support.s3_fault_proxy import S3FaultProxy
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.jobs.sweeping import SweepReport
from upload_jobs.settings import Settings, get_settings

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]


def failed_job(settings: Settings, source: Path) -> int:
    job = JobStore(settings.database_url).add_job(
        str(source), f"videos/{source.name}", status=JobStatus.FAILED, last_error="reset"
    )
    assert job.id is not None
    return job.id


async def _artifacts(flow_run_id: str) -> list[Any]:
    """Every artifact of one flow run."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        return list(
            await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )
        )


async def _artifact_keys(flow_run_id: str) -> set[str]:
    return {artifact.key for artifact in await _artifacts(flow_run_id) if artifact.key}


async def _artifact_data(flow_run_id: str, key: str) -> str:
    """The data of one artifact of one flow run."""
    return str(next(a.data for a in await _artifacts(flow_run_id) if a.key == key))


async def _task_runs(flow_run_id: str, expected: set[str]) -> dict[str, list[str]]:
    """The tags of every task run of one flow run by name, once `expected` are all there: the
    server records task runs from events, a moment after they ran on a busy machine."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    runs: dict[str, list[str]] = {}
    async with get_client() as client:
        for _ in range(100):
            found = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            runs = {run.name: list(run.tags) for run in found}
            if expected <= set(runs):
                break
            await asyncio.sleep(0.1)
    return runs


def test_sweep_reaps_picks_retries_and_reports(
    settings: Settings, clip: Callable[[str, str], Path], tmp_path: Path
) -> None:
    store = JobStore(settings.database_url)
    good = failed_job(settings, clip("mov_pcm", "good.MOV"))  # remuxed by ffmpeg, with progress
    cut = failed_job(settings, clip("truncated", "cut.mp4"))
    gone = failed_job(settings, tmp_path / "gone.mp4")
    crashed = store.add_job(str(clip("faststart", "crashed.mp4")), "videos/crashed.mp4")
    assert crashed.id
    store.claim_job(crashed.id, "worker-that-died", timedelta(minutes=5))
    expire_lease(settings.database_url, crashed.id)
    stale_temp = Path(settings.work_dir) / "job-0-attempt-1-dead" / "left.mp4"
    stale_temp.parent.mkdir(parents=True)
    stale_temp.write_bytes(b"x")

    state = sweep_failed_uploads(limit=10, stale_temp_hours=0, return_state=True)
    report: SweepReport = state.result()

    assert report.reaped == [crashed.id]
    assert sorted(report.picked) == sorted([good, cut, crashed.id])
    assert report.skipped_missing_source == [gone]
    assert sorted(report.completed) == sorted([good, cut, crashed.id])
    assert sorted(report.optimized) == sorted([good, crashed.id])
    assert report.fell_back == [cut]
    assert report.failed == [] and report.stopped_early is None
    assert report.removed_temp_files == 1 and not stale_temp.exists()
    assert store.get_job(gone).status == JobStatus.FAILED
    assert [a.outcome for a in store.list_attempts(crashed.id)] == ["failed", "completed"]
    # The jobs' steps ran in the sweep's own flow run, each a task run named after its job,
    # progress artifacts included (the tests show every step's).
    run_id = str(state.state_details.flow_run_id)
    assert {a.flow_run_id for a in store.list_attempts(good)} == {run_id}
    keys = asyncio.run(_artifact_keys(run_id))
    uploads = {f"upload-job-{job}-uploading" for job in (good, cut, crashed.id)}
    assert keys == {"sweep-report", "sweep-summary", f"upload-job-{good}-optimizing"} | uploads
    summary = asyncio.run(_artifact_data(run_id, "sweep-summary"))
    startup_lines = [line for line in summary.splitlines() if line.startswith("- job ")]
    assert len(startup_lines) == 3  # a line per completed job, with its startup cost
    assert f"- job {cut} `cut.mp4`: " in summary and "as the source; fallback_original" in summary
    assert "- **total**, 3 jobs: " in summary and " saved)" in summary
    names = {f"{step}-job-{good}" for step in (
        "claim_job", "check_source_file", "optimize_for_streaming", "measure_file_size",
        "upload_to_spaces", "mark_job_completed", "cleanup_temp_file")}  # fmt: skip
    steps = asyncio.run(_task_runs(run_id, names))
    for name in names:
        assert steps[name] == []  # untagged: see tasks/job_steps.py


def test_missing_bucket_stops_the_sweep_before_any_retry(
    settings: Settings, clip: Callable[[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [failed_job(settings, clip("faststart", f"{n}.mp4")) for n in range(3)]
    monkeypatch.setenv("UPLOAD_JOBS_BUCKET", "bucket-that-is-not-there")
    get_settings.cache_clear()

    report = sweep_failed_uploads(limit=10)

    assert report.stopped_early and "NoSuchBucket" in report.stopped_early
    assert sorted(report.not_run) == sorted(jobs) and report.completed == []
    store = JobStore(settings.database_url)
    assert all(store.get_job(job_id).attempts == 0 for job_id in jobs), "nothing was claimed"


def test_breaker_stops_after_consecutive_permanent_failures(
    settings: Settings,
    clip: Callable[[str, str], Path],
    s3_server: S3Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jobs = [failed_job(settings, clip("faststart", f"{n}.mp4")) for n in range(5)]
    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        # The bucket answers HEAD, but every upload is refused: a key without write access.
        proxy.fail_always(403, "AccessDenied", kinds={"put_object"})
        monkeypatch.setenv("UPLOAD_JOBS_ENDPOINT_URL", proxy.endpoint_url)
        get_settings.cache_clear()
        report = sweep_failed_uploads(limit=10, concurrency=1, breaker_threshold=3)

    assert len(report.failed) == 3 and len(report.not_run) == 2
    assert sorted(report.failed + report.not_run) == sorted(jobs)
    assert report.stopped_early and "3 permanent upload errors in a row" in report.stopped_early
    assert proxy.count("put_object") == 3


@one_database  # the claim's SQL under contention is test_store's subject, on both
def test_two_sweeps_at_once_upload_each_job_once(
    settings: Settings, clip: Callable[[str, str], Path], s3_server: S3Backend
) -> None:
    jobs = [failed_job(settings, clip("faststart", f"race-{n}.mp4")) for n in range(6)]
    reports: list[SweepReport] = []
    errors: list[BaseException] = []

    def sweep() -> None:
        try:
            reports.append(sweep_failed_uploads(limit=10, concurrency=2))
        except BaseException as exc:  # a thread's exception is otherwise lost to the test
            errors.append(exc)

    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(sweep,)) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)

    assert not errors, f"a sweep raised: {errors!r}"
    assert len(reports) == 2, "both sweeps returned"
    store = JobStore(settings.database_url)
    assert all(store.get_job(job_id).status == JobStatus.COMPLETED for job_id in jobs)
    assert all(len(store.list_attempts(job_id)) == 1 for job_id in jobs)
    done = sorted(job_id for report in reports for job_id in report.completed)
    assert done == sorted(jobs), "each job completed by exactly one of the sweeps"
    puts = [r for r in s3_server.requests if r.kind == "put_object" and r.bucket == settings.bucket]
    assert len(puts) == len(jobs)
