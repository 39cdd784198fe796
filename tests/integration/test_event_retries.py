"""Retries started by events, on a real Prefect server with its triggers service: a transient
failure's `upload-job.failed` event schedules exactly one `retry-upload-job/on-demand` run for
when the job is due, which `upload-jobs serve` runs to completion; a permanent failure starts
none; a sweep leaves a job whose triggered run is queued to that run; and the automation people
copy from `automations/` is accepted by the server and notifies through a webhook block."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun

from deployments import RETRY_DEPLOYMENT
from deployments.event_triggers import retry_trigger_name
from flows.retry_upload import retry_upload_job
from flows.sweep import sweep_failed_uploads
from tests.integration.conftest import process_tree
from tests.support.ports import closed_port_url
from tests.support.prefect_runs import runs_of
from tests.support.serving import ServeProcess, delete_deployments
from upload_jobs.jobs.models import JobStatus, UploadJob, as_utc
from upload_jobs.jobs.retry_policy import retry_policy
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings, get_settings

# What these test (workers and triggers) does not depend on S3: moto only.
pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_api"), pytest.mark.moto_only]

# The `prefect_api` server keeps its triggers service on here (conftest).
PREFECT_SERVICES_ON = ("TRIGGERS",)
REPO_ROOT = Path(__file__).resolve().parents[2]
AUTOMATION_FILE = REPO_ROOT / "automations" / "notify-upload-failures.yaml"
PLACEHOLDER_BLOCK_ID = "00000000-0000-0000-0000-000000000000"
# Bounds, not expectations: a triggered retry is due 2 s after its failure here.
RUN_TIMEOUT = 120.0


class WebhookInbox(BaseHTTPRequestHandler):
    """Keeps each JSON body POSTed to it, as Slack or a mail gateway would get it."""

    received: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def webhook_inbox(prefect_api: str) -> Iterator[list[dict[str, str]]]:
    """A webhook receiver, a notification block posting to it, and the automation file created
    with `prefect automation create -f` (the block's id in place of the placeholder)."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    server = HTTPServer(("127.0.0.1", 0), WebhookInbox)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    block = CustomWebhookNotificationBlock(
        name="upload-jobs-alerts",
        url=f"http://127.0.0.1:{server.server_port}/hook",
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
    )
    block_id = block.save("upload-jobs-alerts", overwrite=True)
    automations = Path(os.environ.get("TMPDIR", "/tmp")) / f"alerts-{block_id}.yaml"
    automations.write_text(AUTOMATION_FILE.read_text().replace(PLACEHOLDER_BLOCK_ID, str(block_id)))
    created = subprocess.run(
        [sys.executable, "-m", "prefect", "automation", "create", "-f", str(automations)],
        env={**os.environ, "PREFECT_API_URL": prefect_api},
        capture_output=True,
        text=True,
        check=False,
    )
    automations.unlink()
    assert created.returncode == 0, created.stdout + created.stderr
    with get_client(sync_client=True) as client:
        names = {automation.name for automation in client.read_automations()}
    assert {
        "upload-jobs: a job failed permanently",
        "upload-jobs: 5 failed attempts within an hour",
    } <= names, created.stdout
    yield WebhookInbox.received
    server.shutdown()


@pytest.fixture
def short_backoff(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Backoff 2 s then 4 s, three attempts; one S3 request per call, no task retry."""
    for name, value in {
        "UPLOAD_JOBS_RETRY_BACKOFF_SECONDS": "2",
        "UPLOAD_JOBS_MAX_ATTEMPTS": "3",
        "UPLOAD_JOBS_S3_MAX_ATTEMPTS": "1",
        "UPLOAD_JOBS_UPLOAD_RETRIES": "0",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    delete_deployments()
    yield get_settings()
    delete_deployments()
    get_settings.cache_clear()


def serve(tmp_path: Path, name: str) -> ServeProcess:
    """`upload-jobs serve` with this test's settings, once its triggers are on the server."""
    process = ServeProcess(tmp_path / f"{name}.log")
    process.wait_until_serving()
    policy = retry_policy(get_settings())
    expected = {retry_trigger_name(b) for b in policy.backoffs_with_a_retry_left()}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            if expected <= {automation.name for automation in client.read_automations()}:
                return process
        time.sleep(0.5)
    process.stop()
    raise AssertionError(f"serve registered no triggers {expected}:\n{process.log()}")


def fail_here(job_id: int, monkeypatch: pytest.MonkeyPatch, endpoint_url: str) -> UploadJob:
    """Run the job in this process with `endpoint_url` as Spaces; the job as it failed."""
    good = get_settings().endpoint_url
    monkeypatch.setenv("UPLOAD_JOBS_ENDPOINT_URL", endpoint_url)
    get_settings.cache_clear()
    retry_upload_job(job_id, return_state=True)
    monkeypatch.setenv("UPLOAD_JOBS_ENDPOINT_URL", good or "")
    get_settings.cache_clear()
    job = JobStore(get_settings().database_url).get_job(job_id)
    assert job.status == JobStatus.FAILED, job
    return job


def retry_runs() -> list[FlowRun]:
    """Every run of `retry-upload-job/on-demand`, however it was started."""
    with get_client(sync_client=True) as client:
        return runs_of(client.read_deployment_by_name(RETRY_DEPLOYMENT).id)


def no_flow_run_process(process: ServeProcess) -> Callable[[], bool]:
    """Whether serve runs no flow-run process: one still finishing (its run completed) would be
    marked cancelled when serve stops, Prefect's runner cancelling every run it still tracks."""
    return lambda: len(process_tree(process.popen.pid)) == 1


def wait_until(check: Callable[[], bool], what: str, process: ServeProcess | None = None) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            log = process.log() if process is not None else ""
            raise AssertionError(f"timed out waiting until {what}\n{log}")
        time.sleep(0.25)


def completed(job_id: int) -> Callable[[], bool]:
    """Whether the job is completed and every retry run has finished (serve cancels the runs
    still going when it stops)."""
    store = JobStore(get_settings().database_url)

    def check() -> bool:
        runs_done = all(run.state is not None and run.state.is_final() for run in retry_runs())
        return store.get_job(job_id).status == JobStatus.COMPLETED and runs_done

    return check


def test_a_transient_failure_is_retried_on_its_event_and_a_permanent_one_is_not(
    short_backoff: Settings,
    webhook_inbox: list[dict[str, str]],
    clip: Callable[[str, str], Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    webhook_inbox.clear()  # what an earlier database's test was notified of
    store = JobStore(short_backoff.database_url)
    process = serve(tmp_path, "serve")
    try:
        broken = store.add_job(str(tmp_path / "gone.mp4"), "videos/gone.mp4")
        flaky = store.add_job(str(clip("faststart", "flaky.mp4")), "videos/flaky.mp4")
        assert broken.id is not None and flaky.id is not None
        gone = fail_here(broken.id, monkeypatch, short_backoff.endpoint_url or "")
        assert gone.error_kind == "source_missing"
        failed = fail_here(flaky.id, monkeypatch, closed_port_url())
        assert failed.error_kind == "upload_transient"
        failed_at = time.monotonic()
        wait_until(completed(flaky.id), f"job {flaky.id} is completed", process)
        took = time.monotonic() - failed_at
        wait_until(no_flow_run_process(process), "the run's process exited", process)
        print(f"\ntransient failure -> completed by the triggered run: {took:.1f} s")
    finally:
        process.stop()

    [run] = retry_runs()
    assert int(run.parameters["job_id"]) == flaky.id
    assert run.state is not None and run.state.is_completed()
    # Scheduled for when the job was due, not at once.
    assert run.expected_start_time is not None and failed.next_attempt_at is not None
    assert as_utc(run.expected_start_time) >= as_utc(failed.next_attempt_at)
    attempts = store.list_attempts(flaky.id)
    assert [a.outcome for a in attempts] == ["failed", "completed"]
    assert attempts[-1].flow_run_id == str(run.id)
    # Nothing retried the permanent failure (the one run is the flaky job's); a missing source
    # spends no attempt.
    gone_now = store.get_job(broken.id)
    assert (gone_now.status, gone_now.error_kind, gone_now.attempts) == (
        JobStatus.FAILED,
        "source_missing",
        0,
    )

    # The copied automation told people about the permanent failure, and only that one.
    wait_until(lambda: bool(webhook_inbox), "the webhook got the notification")
    [notification] = webhook_inbox
    assert notification["subject"] == f"Upload job {broken.id} failed permanently"
    assert "videos/gone.mp4: Original video file not found" in notification["body"]
    assert f"upload-jobs retry {broken.id}" in notification["body"]
    assert "attempt 0" not in notification["body"], "no attempt was spent: none is named"


def test_a_sweep_leaves_a_job_to_its_triggered_run(
    short_backoff: Settings,
    clip: Callable[[str, str], Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    store = JobStore(short_backoff.database_url)
    serve(tmp_path, "register").stop()  # the deployments and triggers, and nothing running them
    job = store.add_job(str(clip("faststart", "queued.mp4")), "videos/queued.mp4")
    assert job.id is not None
    failed = fail_here(job.id, monkeypatch, closed_port_url())
    wait_until(lambda: len(retry_runs()) == 1, "the trigger scheduled a run")
    due_at = as_utc(failed.next_attempt_at)
    assert due_at is not None
    wait_until(lambda: datetime.now(UTC) > due_at, "the job is due")

    report = sweep_failed_uploads(mode="distributed")
    assert report.retry_queued == [job.id] and report.flow_runs_started == {}
    local = sweep_failed_uploads()
    assert local.retry_queued == [job.id] and local.completed == []

    process = serve(tmp_path, "serve")
    try:
        wait_until(completed(job.id), f"job {job.id} is completed", process)
        wait_until(no_flow_run_process(process), "the run's process exited", process)
    finally:
        process.stop()
    [run] = retry_runs()
    assert run.state is not None and run.state.is_completed()
    assert [a.flow_run_id for a in store.list_attempts(job.id)][-1] == str(run.id)
