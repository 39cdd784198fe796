"""`upload-jobs setup`, `serve`, `sweep`, `retry --via-deployment` on a real Prefect server."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL, temporary_settings

# Imported here, not first inside a CliRunner call: Prefect binds its console log handler to
# sys.stderr at import, and CliRunner's stand-in stream is closed after each call.
import flows.sweep  # noqa: F401
from deployments import RETRY_DEPLOYMENT, WORK_POOL
from tests.conftest import TEST_ACCESS_KEY, TEST_SECRET_KEY
from tests.support.command_line import invoke
from tests.support.serving import ServeProcess, delete_deployments
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings, get_settings

# What these test (the CLI's answers) does not depend on S3: moto only.
pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server"), pytest.mark.moto_only]

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVE_STARTUP_SECONDS = 60


@pytest.fixture
def slot_limit_names(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """Limit names of this test's own: setup must create whatever names the tasks acquire."""
    names = ("ffmpeg-slots-setup-test", "upload-slots-setup-test")
    monkeypatch.setenv("UPLOAD_JOBS_FFMPEG_SLOTS_LIMIT", names[0])
    monkeypatch.setenv("UPLOAD_JOBS_UPLOAD_SLOTS_LIMIT", names[1])
    get_settings.cache_clear()
    yield names
    get_settings.cache_clear()


def test_setup_creates_pool_and_limits_once_then_keeps_or_updates_them(
    slot_limit_names: tuple[str, str],
) -> None:
    ffmpeg_slots, upload_slots = slot_limit_names
    with get_client(sync_client=True) as client:
        for name in slot_limit_names:
            with contextlib.suppress(ObjectNotFound):
                client.delete_global_concurrency_limit_by_name(name)
        with contextlib.suppress(ObjectNotFound):
            client.delete_work_pool(WORK_POOL)

    runs = []
    for slots in (("2", "4"), ("2", "4"), ("3", "4")):
        code, output = invoke(
            "setup", "--ffmpeg-slots", slots[0], "--upload-slots", slots[1], "--json"
        )
        assert code == 0, output
        runs.append({row["name"]: row["action"] for row in json.loads(output)})
    assert runs == [
        {WORK_POOL: "created", ffmpeg_slots: "created", upload_slots: "created"},
        {WORK_POOL: "unchanged", ffmpeg_slots: "unchanged", upload_slots: "unchanged"},
        {WORK_POOL: "unchanged", ffmpeg_slots: "updated", upload_slots: "unchanged"},
    ]
    with get_client(sync_client=True) as client:
        assert client.read_work_pool(WORK_POOL).type == "process"
        ffmpeg = client.read_global_concurrency_limit_by_name(ffmpeg_slots)
        upload = client.read_global_concurrency_limit_by_name(upload_slots)
    assert (ffmpeg.limit, ffmpeg.active, upload.limit, upload.active) == (3, True, 4, True)

    code, output = invoke("setup")
    assert code == 0 and ffmpeg_slots in output and "2 slots (was 3)" in output


def test_via_deployment_without_server_or_deployment_says_what_to_start(
    settings: Settings, clip: Callable[[str, str], Path]
) -> None:
    job = JobStore(settings.database_url).add_job(str(clip("faststart", "a.mp4")), "videos/a.mp4")
    # Nothing was run, so these are exit 2, like a bad setting, not 1 (a job that failed).
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        code, output = invoke("retry", str(job.id), "--via-deployment")
        output = " ".join(output.split())  # rich wraps long lines
        assert code == 2 and "needs a Prefect server that keeps running" in output, output
        assert "none is configured or running on this machine" in output
        code, output = invoke("serve", "--json")
        error = json.loads(output)["error"]
        assert code == 2 and "prefect server start" in error
        assert "cannot schedule runs on a temporary server" in error

    delete_deployments()
    code, output = invoke("retry", str(job.id), "--via-deployment")
    output = " ".join(output.split())  # rich wraps long lines
    assert code == 2, output
    assert f"has no deployment {RETRY_DEPLOYMENT}" in output
    assert "start `upload-jobs serve` first" in output and "Traceback" not in output
    code, output = invoke("sweep", "--mode", "distributed", "--json")
    assert code == 2 and "upload-jobs serve" in json.loads(output)["error"]
    code, _ = invoke("retry", "999", "--via-deployment")
    assert code == 2
    assert JobStore(settings.database_url).get_job(job.id or 0).status == JobStatus.PENDING


def test_sweep_prints_its_report(
    settings: Settings, clip: Callable[[str, str], Path], tmp_path: Path
) -> None:
    store = JobStore(settings.database_url)
    due = store.add_job(
        str(clip("moov_at_end", "due.mp4")), "videos/due.mp4", status=JobStatus.FAILED
    )
    gone = store.add_job(str(tmp_path / "gone.mp4"), "videos/gone.mp4", status=JobStatus.FAILED)

    code, output = invoke("sweep", "--limit", "5", "--json")
    assert code == 0, output
    report = json.loads(output)
    assert report["mode"] == "local"
    assert report["completed"] == report["optimized"] == [due.id]
    assert report["skipped_missing_source"] == [gone.id]

    code, output = invoke("sweep")
    assert code == 0 and "Sweep (local)" in output and "skipped: source file missing" in output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_retry_and_distributed_sweep_run_on_the_served_deployment(
    served: ServeProcess, settings: Settings, clip: Callable[[str, str], Path]
) -> None:
    store = JobStore(settings.database_url)
    job = store.add_job(str(clip("moov_at_end", "served.mp4")), "videos/served.mp4")
    code, output = invoke("retry", str(job.id), "--via-deployment", "--timeout", "90", "--json")
    assert code == 0, f"{output}\n{served.log()}"
    outputs = [output]
    result = json.loads(output)
    assert result["message"] == f"Upload job {job.id} retried with streaming optimization"
    assert result["job"]["status"] == "completed" and result["job"]["optimized_for_streaming"]
    [attempt] = store.list_attempts(job.id or 0)
    assert attempt.flow_run_id == result["flow_run_id"]

    failed = store.add_job(
        str(clip("faststart", "failed.mp4")), "videos/failed.mp4", status=JobStatus.FAILED
    )
    code, output = invoke("sweep", "--mode", "distributed", "--json")
    assert code == 0, output
    outputs.append(output)
    started = json.loads(output)["flow_runs_started"]
    assert list(started) == [str(failed.id)]
    deadline = time.monotonic() + 60
    while store.get_job(failed.id or 0).status != JobStatus.COMPLETED:
        assert time.monotonic() < deadline, served.log()
        time.sleep(0.5)
    [attempt] = store.list_attempts(failed.id or 0)
    assert attempt.flow_run_id == started[str(failed.id)]

    # Credentials reach the runs through the environment only: not parameters, logs or output.
    with get_client(sync_client=True) as client:
        for flow_run_id, job_id in (
            (result["flow_run_id"], job.id),
            (attempt.flow_run_id, failed.id),
        ):
            assert client.read_flow_run(UUID(flow_run_id)).parameters == {"job_id": job_id}
    everything = "\n".join([*outputs, served.log_path.read_text(errors="replace")])
    assert "Uploaded to s3://" in everything  # the flow runs' logs are in there
    # The session's server runs no scheduler: serve said so, in one sentence, and why.
    said = " ".join(everything.split())
    assert (
        "The Prefect server has scheduled no run of sweep-failed-uploads/scheduled in 5 s, so "
        "failed jobs are not swept on their own: its scheduler service is off "
        "(PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED=false" in said
    )
    assert TEST_ACCESS_KEY not in everything and TEST_SECRET_KEY not in everything
