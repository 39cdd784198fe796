"""The page answers while where its retries run is still being decided (Prefect importing, a
temporary server starting): lists, details and stats at once, a retry asked for meanwhile
waiting for Prefect or saying it is starting; then retries go where it was decided. And
`upload-jobs web` itself serves before Prefect is imported."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.ports import closed_port_url, free_port
from tests.support.web_app import LOOPBACK_HEADERS, HeldRetryQueue, web_client
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings
from upload_jobs.web.deferred_retries import DeferredRetryQueue
from upload_jobs.web.server import RetrySetup

# What these test (the page and its API) does not depend on S3: moto only.
pytestmark = [
    pytest.mark.moto_only,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]
REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_page_answers_before_it_knows_where_retries_run(
    settings: Settings, clip: Callable[[str, str], Path]
) -> None:
    store = JobStore(settings.database_url)
    job = store.add_job(str(clip("faststart", "a.mp4")), "videos/a.mp4", JobStatus.FAILED)
    prefect_up = threading.Event()
    held = HeldRetryQueue()
    heard: list[str] = []

    def decide() -> RetrySetup:
        prefect_up.wait(30)  # Prefect importing, a temporary server starting
        return RetrySetup(held, "http://prefect.example/ui", "Retries run in this web process.")

    queue = DeferredRetryQueue(
        decide, lambda setup, error: heard.append(setup.description if setup else str(error)),
        wait_seconds=0.5,
    )  # fmt: skip
    with web_client(queue) as client:
        listed = client.get("/api/jobs").json()
        assert listed["retry_mode"] == "starting" and listed["total"] == 1
        assert client.get(f"/api/jobs/{job.id}").status_code == 200
        assert client.get("/api/stats").status_code == 200

        early = client.post(f"/api/jobs/{job.id}/retry", headers=LOOPBACK_HEADERS)
        assert early.status_code == 503
        assert early.json()["detail"].startswith("Prefect is still starting")
        assert held.started == []

        prefect_up.set()
        deadline = time.monotonic() + 10
        while client.get("/api/jobs").json()["retry_mode"] != "local":
            assert time.monotonic() < deadline, "the decision never arrived"
            time.sleep(0.05)
        accepted = client.post(f"/api/jobs/{job.id}/retry", headers=LOOPBACK_HEADERS)
        assert accepted.status_code == 202 and held.started == [job.id]
        assert client.get("/api/jobs").json()["prefect_ui_url"] == "http://prefect.example/ui"
    assert heard == ["Retries run in this web process."]


def test_a_retry_asked_for_while_prefect_starts_waits_for_it(
    settings: Settings, clip: Callable[[str, str], Path]
) -> None:
    store = JobStore(settings.database_url)
    job = store.add_job(str(clip("faststart", "b.mp4")), "videos/b.mp4", JobStatus.FAILED)
    held = HeldRetryQueue()

    def decide() -> RetrySetup:
        time.sleep(0.5)
        return RetrySetup(held, None, "here")

    with web_client(DeferredRetryQueue(decide, lambda *_: None, wait_seconds=30)) as client:
        accepted = client.post(f"/api/jobs/{job.id}/retry", headers=LOOPBACK_HEADERS)
    assert accepted.status_code == 202 and held.started == [job.id]


def test_prefect_that_cannot_be_used_is_said_to_every_retry(
    settings: Settings, clip: Callable[[str, str], Path]
) -> None:
    store = JobStore(settings.database_url)
    job = store.add_job(str(clip("faststart", "c.mp4")), "videos/c.mp4", JobStatus.FAILED)

    def decide() -> RetrySetup:
        raise RuntimeError("the temporary Prefect server did not start")

    with web_client(DeferredRetryQueue(decide, lambda *_: None)) as client:
        refused = client.post(f"/api/jobs/{job.id}/retry", headers=LOOPBACK_HEADERS)
    assert refused.status_code == 503
    assert refused.json()["detail"] == (
        "Retries cannot run: the temporary Prefect server did not start"
    )


def test_upload_jobs_web_serves_before_prefect_is_imported(
    settings: Settings, tmp_path: Path
) -> None:
    # No Prefect server anywhere: the command starts a temporary one in the background.
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect-home"),
            "UPLOAD_JOBS_LOCAL_PREFECT_API_URL": closed_port_url("/api")}  # fmt: skip
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "upload_jobs.cli", "web", "--port", str(port)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/jobs") as answer:
                    listed = answer.read().decode()
                break
            except OSError:
                assert web.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        # The first answer came before the temporary server was up (it takes seconds more).
        assert '"retry_mode":"starting"' in listed
    finally:
        web.terminate()
        output, _ = web.communicate(timeout=60)
    assert "Jobs page: http://127.0.0.1" in output and "Traceback" not in output
