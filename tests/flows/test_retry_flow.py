"""`retry_upload_job` end to end: real ffmpeg, moto's S3 over HTTP, a real database and a real
Prefect server. Every test also keeps two promises, checked by fixtures at teardown: each source
video is unchanged, and the work dir is empty."""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogWorker
from prefect.settings import get_current_settings
from sqlalchemy import update
from sqlmodel import col

from flows.retry_upload import retry_upload_job
from tests.conftest import sha256_of
from tests.support.recordings import write_unfinished_recording
from tests.support.s3_backends import S3Backend
from tests.support.s3_fault_proxy import S3FaultProxy
from upload_jobs.jobs.database import get_engine
from upload_jobs.jobs.models import JobStatus, UploadJob
from upload_jobs.jobs.store import JobStore
from upload_jobs.jobs.streaming_stats import recorded_startup
from upload_jobs.media.mp4 import read_layout
from upload_jobs.media.remux import build_remux_args, resolve_ffmpeg
from upload_jobs.media.startup import startup_cost
from upload_jobs.settings import Preset, Settings, get_settings
from upload_jobs.storage.spaces import list_open_multipart_uploads, make_s3_client

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]


def add_failed_job(settings: Settings, source: Path, key: str | None = None) -> int:
    job = JobStore(settings.database_url).add_job(
        str(source), key or f"videos/{source.name}", status=JobStatus.FAILED, last_error="reset"
    )
    assert job.id is not None
    return job.id


def run(job_id: int) -> tuple[UploadJob, bool]:
    """Run the flow; return the job as stored and whether the flow run completed."""
    state = retry_upload_job(job_id, return_state=True)
    return JobStore(get_settings().database_url).get_job(job_id), state.is_completed()


def download(settings: Settings, key: str, target: Path) -> Path:
    make_s3_client(settings).download_file(settings.bucket, key, str(target))
    return target


def assert_work_dir_empty(settings: Settings) -> None:
    leftovers = (
        [p for p in Path(settings.work_dir).rglob("*")] if settings.work_dir.exists() else []
    )
    assert leftovers == [], f"temp files left behind: {leftovers}"


@pytest.fixture(autouse=True)
def work_dir_left_empty(settings: Settings) -> Iterator[None]:
    """After every flow, success or failure, no temp file is left in the work dir."""
    yield
    assert_work_dir_empty(settings)


# ffmpeg, S3 and Prefect behaviour, where the job database only records the outcome: SQLite
# alone. PostgreSQL runs the tests where the database decides something (claims, races, failure
# marking, the existing-object check, the sweeps) and the store's own tests.
media_and_s3_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def fault_proxy(
    settings: Settings, s3_server: S3Backend, monkeypatch: pytest.MonkeyPatch
) -> Iterator[S3FaultProxy]:
    """Route the flow's S3 traffic through a proxy that counts requests and injects faults."""
    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        monkeypatch.setenv("UPLOAD_JOBS_ENDPOINT_URL", proxy.endpoint_url)
        monkeypatch.setenv("UPLOAD_JOBS_S3_MAX_ATTEMPTS", "1")
        get_settings.cache_clear()
        yield proxy
    get_settings.cache_clear()


@media_and_s3_only
def test_moov_at_end_input_ends_faststart_in_the_bucket(
    settings: Settings, clip, tmp_path: Path
) -> None:
    source = clip("moov_at_end", "recordings/x.mp4s/clip.MP4")
    job_id = add_failed_job(settings, source)

    job, flow_completed = run(job_id)

    assert flow_completed
    assert job.status == JobStatus.COMPLETED
    assert job.optimized_for_streaming and job.optimization_preset == "faststart"
    assert job.public_url == f"{settings.public_base_url}/videos/clip.MP4"
    assert job.etag and job.completed_at and job.attempts == 1
    uploaded = read_layout(download(settings, "videos/clip.MP4", tmp_path / "got.mp4"))
    original = read_layout(source)
    assert not original.is_faststart and uploaded.is_faststart
    assert uploaded.duration_seconds == pytest.approx(original.duration_seconds, abs=0.1)
    assert job.uploaded_size_bytes == (tmp_path / "got.mp4").stat().st_size
    [attempt] = JobStore(settings.database_url).list_attempts(job_id)
    assert attempt.outcome == "completed" and attempt.optimized and attempt.flow_run_id
    assert set(attempt.step_seconds or {}) == {
        "check_source_file",
        "optimize_for_streaming",
        "measure_file_size",
        "upload_to_spaces",
    }
    # Only the index was misplaced: moved in process, sent from the source, no ffmpeg run.
    assert (attempt.optimization_path, attempt.optimization_path_reason) == (
        "moved_in_process",
        None,
    )
    logs = _log_messages(attempt.flow_run_id)
    assert not [m for m in logs if m.startswith("Running ")]
    assert any(m.startswith("Moved the index (moov) to the front in process") for m in logs)
    # What it bought: the startup cost of the source and of the object, as the bucket holds it.
    assert recorded_startup(attempt, "source") == startup_cost(source)
    assert recorded_startup(attempt, "uploaded") == startup_cost(tmp_path / "got.mp4")
    assert attempt.source_startup_requests == 3 and attempt.uploaded_startup_requests == 1
    assert attempt.source_startup_bytes == source.stat().st_size  # moov at the very end
    assert (attempt.uploaded_startup_bytes or 0) < source.stat().st_size / 5
    assert attempt.remux_seconds == (attempt.step_seconds or {})["optimize_for_streaming"]
    assert any(m.startswith("Startup: ") and "(3 requests → 1)" in m for m in logs)


@media_and_s3_only
def test_a_file_ffmpeg_must_remux_logs_the_command_and_why(settings: Settings, clip) -> None:
    source = clip("mov_pcm", "recordings/take.MOV")
    job_id = add_failed_job(settings, source)

    job, _ = run(job_id)

    assert job.status == JobStatus.COMPLETED and job.optimized_for_streaming
    [attempt] = JobStore(settings.database_url).list_attempts(job_id)
    assert attempt.optimization_path == "ffmpeg_remux"
    assert attempt.optimization_path_reason == (
        "audio track 2 is 'sowt', which MP4 players do not play: it must become AAC"
    )
    # The exact ffmpeg command is in the run's logs, as build_remux_args makes it.
    logs = _log_messages(str(attempt.flow_run_id))
    [command] = [m for m in logs if m.startswith("Running ")]
    argv = shlex.split(command.removeprefix("Running "))
    output = Path(argv[-1].removeprefix("file:"))
    layout = read_layout(source)
    assert argv == build_remux_args(resolve_ffmpeg(), source, output, Preset.FASTSTART, layout)


def _log_messages(flow_run_id: str) -> list[str]:
    """The flow run's log messages as the Prefect server stores them."""
    APILogWorker.drain_all(timeout=10)  # logs still queued in this process reach the server
    of_run = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(flow_run_id)]))
    with get_client(sync_client=True) as client:
        return [log.message for log in client.read_logs(log_filter=of_run)]


async def _task_run_names(flow_run_id: str) -> list[str]:
    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return [run.task_key.rsplit("-", 1)[0] for run in sorted(runs, key=lambda r: r.start_time)]


@media_and_s3_only
def test_each_step_is_its_own_task_run_in_order(settings: Settings, clip) -> None:
    job_id = add_failed_job(settings, clip("faststart", "a.mp4"))
    state = retry_upload_job(job_id, return_state=True)
    names = asyncio.run(_task_run_names(str(state.state_details.flow_run_id)))
    steps = [name.split(".")[-1] for name in names]
    assert steps == [
        "claim_job",
        "check_source_file",
        "optimize_for_streaming",
        "measure_file_size",
        "upload_to_spaces",
        "mark_job_completed",
        "cleanup_temp_file",
    ]


async def _progress_artifact_keys(flow_run_id: str) -> list[str]:
    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return sorted(a.key for a in artifacts if a.type == "progress" and a.key)


@media_and_s3_only
def test_steps_shorter_than_the_threshold_make_no_progress_artifact(
    settings: Settings, clip, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = add_failed_job(settings, clip("moov_at_end", "quick.mp4"))
    monkeypatch.setenv("UPLOAD_JOBS_PROGRESS_ARTIFACT_AFTER_SECONDS", "30")
    get_settings.cache_clear()
    state = retry_upload_job(job_id, return_state=True)

    assert state.is_completed()
    assert asyncio.run(_progress_artifact_keys(str(state.state_details.flow_run_id))) == []
    # The jobs page still got the readings.
    [attempt] = JobStore(settings.database_url).list_attempts(job_id)
    assert (attempt.phase, attempt.progress_percent) == ("uploading", 100.0)

    monkeypatch.setenv("UPLOAD_JOBS_PROGRESS_ARTIFACT_AFTER_SECONDS", "0")
    get_settings.cache_clear()
    # A file ffmpeg remuxes (the in-process move reports no progress: it takes milliseconds).
    again = add_failed_job(settings, clip("mov_pcm", "quick.MOV"), key="videos/again.mp4")
    state = retry_upload_job(again, return_state=True)
    assert asyncio.run(_progress_artifact_keys(str(state.state_details.flow_run_id))) == [
        f"upload-job-{again}-optimizing",
        f"upload-job-{again}-uploading",
    ]


@media_and_s3_only
def test_already_faststart_input_is_uploaded_byte_identical(
    settings: Settings, clip, tmp_path: Path
) -> None:
    source = clip("faststart", "ready.mp4")
    job, _ = run(add_failed_job(settings, source))
    assert job.status == JobStatus.COMPLETED and job.optimized_for_streaming
    assert sha256_of(download(settings, "videos/ready.mp4", tmp_path / "got.mp4")) == sha256_of(
        source
    )


@media_and_s3_only
def test_mov_with_pcm_audio_in_an_odd_folder(settings: Settings, clip, tmp_path: Path) -> None:
    source = clip("mov_pcm", "x.mp4s/my clip é.MOV")
    job, _ = run(add_failed_job(settings, source))
    assert job.status == JobStatus.COMPLETED and job.optimized_for_streaming
    assert job.object_key == "videos/my clip é.MOV"
    layout = read_layout(download(settings, job.object_key, tmp_path / "got.mp4"))
    assert layout.is_faststart
    assert [t.fourcc for t in layout.audio_tracks] == ["mp4a"]
    assert sorted(p.name for p in source.parent.iterdir()) == ["my clip é.MOV"]


@media_and_s3_only
def test_truncated_input_falls_back_to_the_original(
    settings: Settings, clip, tmp_path: Path
) -> None:
    source = clip("truncated", "cut.mp4")
    before = sha256_of(source)
    job_id = add_failed_job(settings, source)
    job, flow_completed = run(job_id)
    assert flow_completed and job.status == JobStatus.COMPLETED
    assert not job.optimized_for_streaming
    [attempt] = JobStore(settings.database_url).list_attempts(job_id)
    assert attempt.fallback_reason and "truncated" in attempt.fallback_reason
    assert attempt.fallback_kind == "source_truncated"
    # Cut in its media, after moov: it starts, the same before and after (the original went up).
    assert recorded_startup(attempt, "source") == recorded_startup(attempt, "uploaded")
    assert attempt.uploaded_startup_requests == 1
    assert sha256_of(download(settings, "videos/cut.mp4", tmp_path / "got.mp4")) == before


def test_missing_source_fails_without_upload(
    settings: Settings, tmp_path: Path, fault_proxy: S3FaultProxy
) -> None:
    missing = tmp_path / "gone.mp4"
    job, flow_completed = run(add_failed_job(settings, missing))
    assert not flow_completed
    assert job.status == JobStatus.FAILED
    assert job.error_kind == "source_missing"
    assert job.last_error == f"Original video file not found: {missing}"
    assert fault_proxy.count("put_object") == 0 and fault_proxy.count("create_multipart") == 0


def test_empty_source_fails(settings: Settings, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    job, _ = run(add_failed_job(settings, empty))
    assert (job.status, job.error_kind) == (JobStatus.FAILED, "source_empty")
    assert empty.exists() and empty.stat().st_size == 0


@media_and_s3_only
def test_permanent_s3_error_is_not_retried(
    settings: Settings, clip, fault_proxy: S3FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPLOAD_JOBS_BUCKET", "no-such-bucket-here")
    get_settings.cache_clear()
    job, _ = run(add_failed_job(settings, clip("faststart", "a.mp4")))
    assert (job.status, job.error_kind) == (JobStatus.FAILED, "upload_permanent")
    assert "NoSuchBucket" in (job.last_error or "")
    assert fault_proxy.count("put_object") == 1, "a permanent error is tried once"
    [attempt] = JobStore(settings.database_url).list_attempts(job.id or 0)
    assert attempt.optimized and attempt.optimization_preset == "faststart"
    assert attempt.error_kind == "upload_permanent" and attempt.source_size_bytes


@media_and_s3_only
def test_transient_s3_errors_are_retried_by_the_task(
    settings: Settings, clip, fault_proxy: S3FaultProxy
) -> None:
    fault_proxy.fail_next(2, 503, "SlowDown", kinds={"put_object"})
    job, _ = run(add_failed_job(settings, clip("faststart", "a.mp4")))
    assert job.status == JobStatus.COMPLETED
    assert fault_proxy.count("put_object") == 3, "two throttled PUTs, then one that landed"


@media_and_s3_only
def test_transient_errors_past_the_retry_budget_fail_the_job(
    settings: Settings, clip, fault_proxy: S3FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPLOAD_JOBS_UPLOAD_RETRIES", "2")
    get_settings.cache_clear()
    fault_proxy.fail_always(500, "InternalError", kinds={"put_object"})
    job, _ = run(add_failed_job(settings, clip("faststart", "a.mp4")))
    assert (job.status, job.error_kind) == (JobStatus.FAILED, "upload_transient")
    assert fault_proxy.count("put_object") == 3, "first try + 2 task retries"


@media_and_s3_only
def test_failed_multipart_upload_leaves_no_parts(
    settings: Settings, tmp_path: Path, fault_proxy: S3FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPLOAD_JOBS_MULTIPART_THRESHOLD_BYTES", str(5 * 1024 * 1024))
    monkeypatch.setenv("UPLOAD_JOBS_MULTIPART_CHUNK_BYTES", str(5 * 1024 * 1024))
    get_settings.cache_clear()
    # No moov: optimization falls back and the original goes up in three parts.
    source = tmp_path / "big.mp4"
    write_unfinished_recording(source, 12 * 1024 * 1024)
    fault_proxy.fail_always(403, "AccessDenied", kinds={"upload_part"}, min_part_number=2)
    job, _ = run(add_failed_job(settings, source))
    assert (job.status, job.error_kind) == (JobStatus.FAILED, "upload_permanent")
    [attempt] = JobStore(settings.database_url).list_attempts(job.id or 0)
    assert "never finalized" in (attempt.fallback_reason or "")
    assert fault_proxy.count("abort_multipart") >= 1
    client = make_s3_client(get_settings())
    assert list_open_multipart_uploads(client, settings.bucket) == []


def test_object_already_uploaded_is_not_sent_again(
    settings: Settings, clip, fault_proxy: S3FaultProxy
) -> None:
    source = clip("faststart", "again.mp4")
    job_id = add_failed_job(settings, source)
    assert run(job_id)[0].status == JobStatus.COMPLETED
    # The run uploaded but could not mark the job: the next run must not re-upload.
    with get_engine(settings.database_url).begin() as connection:
        connection.execute(
            update(UploadJob).where(col(UploadJob.id) == job_id).values(status=JobStatus.FAILED)
        )
    fault_proxy.reset_counts()
    job, _ = run(job_id)
    assert job.status == JobStatus.COMPLETED
    assert fault_proxy.count("put_object") == 0
    _, again = JobStore(settings.database_url).list_attempts(job_id)
    assert again.skipped_existing_object


def test_two_runs_started_at_once_give_one_runner(
    settings: Settings, clip, s3_server: S3Backend
) -> None:
    job_id = add_failed_job(settings, clip("moov_at_end", "race.mp4"))
    command = [sys.executable, "-m", "upload_jobs.cli", "retry", str(job_id)]
    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url)}
    runs = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [(proc.wait(timeout=240), *proc.communicate()) for proc in runs]
    winners = [out for code, out, _ in results if "retried with streaming optimization" in out]
    assert len(winners) == 1, results
    # The other run either met the lease (exit 1) or, started late, found the job done (exit 0).
    [(loser_code, loser_out, loser_err)] = [r for r in results if r[1] not in winners]
    loser_says = loser_out + loser_err
    assert (loser_code, "already in progress" in loser_says) == (1, True) or (
        loser_code,
        "already completed" in loser_says,
    ) == (0, True), results
    puts = [r for r in s3_server.requests if r.kind == "put_object" and r.bucket == settings.bucket]
    assert len(puts) == 1, "the object was uploaded once"
    job = JobStore(settings.database_url).get_job(job_id)
    assert (job.status, job.attempts) == (JobStatus.COMPLETED, 1)
    assert len(JobStore(settings.database_url).list_attempts(job_id)) == 1


@media_and_s3_only
def test_global_concurrency_slots_are_taken_and_given_back(
    settings: Settings,
    clip: Callable[[str, str], Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def active_slots(create: bool) -> dict[str, int]:
        async with get_client() as client:
            if create:
                await client.upsert_global_concurrency_limit_by_name("ffmpeg-slots", 1)
            found = await client.read_global_concurrency_limits()
        return {limit.name: limit.active_slots for limit in found}

    asyncio.run(active_slots(create=True))
    monkeypatch.setenv("UPLOAD_JOBS_USE_CONCURRENCY_LIMITS", "true")
    # An upload limit nobody created: the run goes on unlimited, and Prefect says so.
    monkeypatch.setenv("UPLOAD_JOBS_UPLOAD_SLOTS_LIMIT", "upload-slots-not-set-up")
    get_settings.cache_clear()

    job, _ = run(add_failed_job(settings, clip("moov_at_end", "slots.mp4")))

    assert job.status == JobStatus.COMPLETED and job.optimized_for_streaming
    assert asyncio.run(active_slots(create=False))["ffmpeg-slots"] == 0, "slot given back"
    assert "['upload-slots-not-set-up'] do not exist" in caplog.text
