"""`upload-jobs serve` on a real Prefect server whose scheduler runs: the scheduled sweep fires on
its own and completes a failed job; stopping serve (SIGTERM, or Ctrl-C's SIGINT) leaves a run
that has just completed Completed, and stops a run still going the way `retry` does on Ctrl-C
(its job given back); runs made with a random name get their job's name while queued."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Scheduled, State

from deployments import RETRY_DEPLOYMENT, SWEEP_DEPLOYMENT
from deployments.runner import STOPPED_MESSAGE
from tests.conftest import one_database
from tests.support.recordings import write_unfinished_recording
from tests.support.s3_backends import S3Backend
from tests.support.s3_fault_proxy import S3FaultProxy
from tests.support.serving import ServeProcess, delete_deployments
from tests.support.settings_env import multipart_in_parts_of, set_env, use_settings
from upload_jobs.errors import ErrorKind
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings, get_settings

# What these test (schedules, stopping serve) depends on neither S3 nor the database kind: moto
# only, and one database (PostgreSQL when configured, the one served workers share).
pytestmark = [
    pytest.mark.flow,
    pytest.mark.usefixtures("prefect_api"),
    pytest.mark.moto_only,
    one_database,
]

# The `prefect_api` server schedules runs here (conftest), as any `prefect server start` does.
PREFECT_SERVICES_ON = ("SCHEDULER",)
# Bounds, not expectations: the every-minute sweep is due within 60 s of serving.
SCHEDULED_SWEEP_TIMEOUT = 150.0
RUN_TIMEOUT = 90.0
MiB = 1024 * 1024


@pytest.fixture
def no_deployments(settings: Settings) -> Iterator[None]:
    """Neither deployment, nor a run of them, before and after the test."""
    delete_deployments()
    yield
    delete_deployments()


def wait_for(check: Callable[[], object], what: str, timeout: float, serve: ServeProcess) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert serve.popen.poll() is None, f"serve exited before {what}:\n{serve.log()}"
        assert time.monotonic() < deadline, f"no {what} in {timeout:.0f} s:\n{serve.log()}"
        time.sleep(0.2)


def flow_run(run_id: UUID) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def start_retry_run(job_id: int, name: str | None = None) -> UUID:
    """A run of the on-demand deployment, as the UI's Quick run or the REST API makes it."""
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(RETRY_DEPLOYMENT)
        run = client.create_flow_run_from_deployment(
            deployment.id, parameters={"job_id": job_id}, name=name
        )
    return run.id


@pytest.mark.usefixtures("no_deployments")
def test_the_scheduled_sweep_fires_on_its_own_and_completes_a_failed_job(
    settings: Settings, clip: Callable[[str, str], Path], tmp_path: Path
) -> None:
    store = JobStore(settings.database_url)
    job = store.add_job(str(clip("faststart", "due.mp4")), "videos/due.mp4", JobStatus.FAILED)
    serve = ServeProcess(tmp_path / "serve.log", sweep_cron="* * * * *")
    try:
        serve.wait_until_serving()
        wait_for(lambda: "has scheduled the next sweeps" in serve.log(), "schedule check", 60,
                 serve)  # fmt: skip
        wait_for(lambda: store.get_job(job.id or 0).status == JobStatus.COMPLETED,
                 "sweep that completed the job", SCHEDULED_SWEEP_TIMEOUT, serve)  # fmt: skip
        [attempt] = store.list_attempts(job.id or 0)
        sweep_id = UUID(str(attempt.flow_run_id))
        wait_for(lambda: flow_run(sweep_id).state_type == StateType.COMPLETED, "sweep's end",
                 RUN_TIMEOUT, serve)  # fmt: skip
    finally:
        serve.stop()
    sweep = flow_run(sweep_id)
    assert sweep.auto_scheduled, "the server's scheduler made the run, nobody else"
    assert sweep.deployment_id is not None
    with get_client(sync_client=True) as client:
        assert client.read_deployment(sweep.deployment_id).name == SWEEP_DEPLOYMENT.split("/")[1]
    assert sweep.name.startswith("sweep-local: 1 completed"), sweep.name
    assert "Traceback" not in serve.log(400)


@pytest.mark.usefixtures("no_deployments")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_stopping_serve_right_after_a_run_completed_keeps_it_completed(
    settings: Settings, clip: Callable[[str, str], Path], tmp_path: Path, signum: signal.Signals
) -> None:
    store = JobStore(settings.database_url)
    job = store.add_job(str(clip("faststart", "quick.mp4")), "videos/quick.mp4", JobStatus.FAILED)
    serve = ServeProcess(tmp_path / "serve.log")
    serve.wait_until_serving()
    run_id = start_retry_run(job.id or 0)

    # Stopped the moment the server has the run Completed: its process is still exiting.
    wait_for(lambda: flow_run(run_id).state_type == StateType.COMPLETED, "completed run",
             RUN_TIMEOUT, serve)  # fmt: skip
    serve.stop(signum)

    assert serve.popen.returncode == 0, serve.log()
    finished = flow_run(run_id)
    assert finished.state_type == StateType.COMPLETED, finished.state
    assert store.get_job(job.id or 0).status == JobStatus.COMPLETED
    log = serve.log(400)
    assert f"{signum.name}: stopping." in log and "Stopped serving." in log
    assert "Traceback" not in log


@pytest.mark.usefixtures("no_deployments")
def test_stopping_serve_mid_upload_gives_the_job_back_and_says_so(
    settings: Settings, s3_server: S3Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JobStore(settings.database_url)
    source = write_unfinished_recording(tmp_path / "videos" / "long.mp4", 11 * MiB)
    job = store.add_job(str(source), "videos/long.mp4", JobStatus.FAILED)
    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        proxy.slow_always(30.0, kinds={"upload_part"})
        set_env(monkeypatch, multipart_in_parts_of(5, concurrency=1))
        use_settings(monkeypatch, endpoint_url=proxy.endpoint_url)
        serve = ServeProcess(tmp_path / "serve.log")
        serve.wait_until_serving()
        run_id = start_retry_run(job.id or 0)
        wait_for(lambda: proxy.delayed, "part being uploaded", RUN_TIMEOUT, serve)

        serve.stop(signal.SIGTERM)
    get_settings.cache_clear()

    stopped = flow_run(run_id)
    assert stopped.state_type == StateType.CANCELLED, stopped.state
    assert stopped.state is not None and stopped.state.message == STOPPED_MESSAGE
    given_back = store.get_job(job.id or 0)
    assert (given_back.status, given_back.error_kind) == (JobStatus.FAILED, ErrorKind.INTERRUPTED)
    stopping = serve.log(400).split("SIGTERM: stopping.", 1)[1]
    assert "Traceback" not in stopping and "Stopped serving." in stopping


@pytest.mark.usefixtures("no_deployments")
def test_a_run_made_with_a_random_name_is_named_for_its_job_while_it_waits(
    settings: Settings, tmp_path: Path
) -> None:
    serve = ServeProcess(tmp_path / "serve.log")
    try:
        serve.wait_until_serving()
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(RETRY_DEPLOYMENT)
            # Due in an hour, as a triggered retry waits out its backoff.
            later: State[None] = Scheduled(scheduled_time=datetime.now(UTC) + timedelta(hours=1))
            run = client.create_flow_run_from_deployment(
                deployment.id, parameters={"job_id": 4242}, state=later
            )
        assert run.name != "retry-upload-job-4242"
        wait_for(lambda: flow_run(run.id).name == "retry-upload-job-4242", "job's name", 30, serve)
    finally:
        serve.stop()
