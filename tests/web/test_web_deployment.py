"""Where the page's retries run: on the `retry-upload-job/on-demand` deployment when a Prefect
server serves it, otherwise in the web process, and never silently somewhere else."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from deployments import RETRY_DEPLOYMENT, PrefectUnavailable
from tests.support.serving import ServeProcess, delete_deployments
from tests.support.web_app import LOOPBACK_HEADERS, web_client
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings
from upload_jobs.web.server import RetryVia, choose_retry_setup

# What these test (the page and its API) does not depend on S3: moto only.
pytestmark = [
    pytest.mark.flow,
    pytest.mark.usefixtures("prefect_server"),
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
    pytest.mark.moto_only,
]


def test_without_the_deployment_auto_runs_retries_here_and_says_why(settings: Settings) -> None:
    delete_deployments()
    setup = choose_retry_setup(RetryVia.AUTO, workers=1)
    try:
        assert setup.queue.mode == "local" and setup.prefect_ui_url
        assert "in this web process" in setup.description
        assert f"no deployment {RETRY_DEPLOYMENT}" in setup.description
        assert "upload-jobs serve" in setup.description
    finally:
        setup.queue.close()
    with pytest.raises(PrefectUnavailable, match="upload-jobs serve"):
        choose_retry_setup(RetryVia.DEPLOYMENT, workers=1)


def test_retry_goes_through_the_served_deployment(
    served: ServeProcess,
    settings: Settings,
    clip: Callable[[str, str], Path],
) -> None:
    store = JobStore(settings.database_url)
    job = store.add_job(
        str(clip("moov_at_end", "page.mp4")), "videos/page.mp4", status=JobStatus.FAILED
    )
    setup = choose_retry_setup(RetryVia.AUTO, workers=1)
    assert setup.queue.mode == "deployment", setup.description
    with web_client(setup.queue, prefect_ui_url=setup.prefect_ui_url) as client:
        response = client.post(f"/api/jobs/{job.id}/retry", headers=LOOPBACK_HEADERS)
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert accepted["mode"] == "deployment" and accepted["flow_run_id"]
        assert accepted["flow_run_url"] == (
            f"{setup.prefect_ui_url}/runs/flow-run/{accepted['flow_run_id']}"
        )
        again = client.post(f"/api/jobs/{job.id}/retry", headers=LOOPBACK_HEADERS)
        assert again.status_code == 409, again.text  # queued, running or done: not twice
        deadline = time.monotonic() + 90
        while (row := client.get(f"/api/jobs/{job.id}").json())["status"] != "completed":
            assert time.monotonic() < deadline, f"{row}\n{served.log()}"
            time.sleep(0.5)
    assert row["optimized"] is True and row["flow_run_id"] == accepted["flow_run_id"]
    assert [a.flow_run_id for a in store.list_attempts(job.id or 0)] == [accepted["flow_run_id"]]
