"""Start a retry on whatever serves `retry-upload-job/on-demand` (serve or a worker), and wait."""

from __future__ import annotations

import asyncio

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.exceptions import FlowRunWaitTimeout, ObjectNotFound
from prefect.flow_runs import wait_for_flow_run

from deployments import RETRY_DEPLOYMENT, PrefectUnavailable, retry_run_name
from deployments.server import prefect_ui_url, require_prefect_server
from upload_jobs.jobs.retry_outcome import RetryOutcome, finished_run_outcome
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import get_settings


def require_retry_deployment() -> None:
    """Raise `PrefectUnavailable`, saying what to start, unless the server has the deployment."""
    url = require_prefect_server(
        f"Running on {RETRY_DEPLOYMENT}",
        "its runs are picked up by `upload-jobs serve` or a worker",
    )
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(RETRY_DEPLOYMENT)
        except ObjectNotFound:
            raise PrefectUnavailable(
                f"The Prefect server at {url} has no deployment {RETRY_DEPLOYMENT}: "
                "start `upload-jobs serve` first (or `prefect deploy --all` and a worker)."
            ) from None


def start_retry(job_id: int, idempotency_key: str | None = None) -> FlowRun:
    """Create a `retry-upload-job/on-demand` run for `job_id`; returns once it is scheduled.

    With `idempotency_key`, a second call with the same key gets the first call's run back.
    """
    require_retry_deployment()
    flow_run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync: not a coroutine
        RETRY_DEPLOYMENT,
        parameters={"job_id": job_id},
        timeout=0,
        idempotency_key=idempotency_key,
        # The name the flow gives itself once it starts, so the UI shows it from the start.
        flow_run_name=retry_run_name(job_id),
    )
    return flow_run


def flow_run_url(flow_run: FlowRun) -> str:
    """The flow run's page in the Prefect UI."""
    return f"{prefect_ui_url()}/runs/flow-run/{flow_run.id}"


def wait_for_retry(flow_run: FlowRun, timeout_seconds: int) -> FlowRun | None:
    """The flow run once it has finished, or None if it is still going after the timeout."""
    try:
        return asyncio.run(wait_for_flow_run(flow_run.id, timeout=timeout_seconds))
    except FlowRunWaitTimeout:
        return None


def finished_retry_outcome(job_id: int, flow_run: FlowRun) -> RetryOutcome:
    """How a finished remote retry ended, worded as `upload-jobs retry` words an in-process one."""
    store = JobStore(get_settings().database_url)
    state = flow_run.state
    completed = state is not None and state.is_completed()
    message, name = (state.message, state.name) if state is not None else (None, None)
    return finished_run_outcome(store, job_id, str(flow_run.id), completed, message, name)
