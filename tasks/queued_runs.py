"""Runs of `retry-upload-job/on-demand` that are queued, by job: what the sweep must not start
a second run for, and what a run is named before it starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import ObjectNotFound

from deployments import RETRY_DEPLOYMENT, retry_run_name

# A run in one of these states will claim its job soon (Late runs are Scheduled ones). Not
# Running ones: a running run has claimed its job already (not due, so not picked), and one
# whose process died stays Running on the server while the sweep must take its job back.
QUEUED_STATES = [StateType.SCHEDULED, StateType.PENDING]
# Nothing picked up a run meant to start this long ago (no runner or worker serves it, or one
# died starting it): the sweep retries its job instead of waiting on it.
STALE_AFTER = timedelta(minutes=15)
RUNS_PER_PAGE = 200


def queued_retry_runs() -> dict[int, str]:
    """Job id -> id of a `retry-upload-job/on-demand` run scheduled or starting for it, due
    within the last 15 minutes or later: above all the runs triggers scheduled for after a
    backoff, which the sweep must not double. Each is given its job's name on the way. Empty
    when the server has no such deployment (a temporary server)."""
    queued = _queued_runs()
    _name_for_their_jobs(queued)
    return {job_id: str(run.id) for job_id, run in queued.items()}


def name_queued_retry_runs() -> int:
    """Give every queued retry run its job's name (`retry-upload-job-42`) now, not when it
    starts: runs made by event triggers, the UI's Quick run or the REST API get a random name
    from the server (`granite-degu`); how many were renamed."""
    return _name_for_their_jobs(_queued_runs())


def _name_for_their_jobs(queued: dict[int, FlowRun]) -> int:
    misnamed = {job_id: run for job_id, run in queued.items() if run.name != retry_run_name(job_id)}
    if misnamed:
        with get_client(sync_client=True) as client:
            for job_id, run in misnamed.items():
                client.update_flow_run(run.id, name=retry_run_name(job_id))
    return len(misnamed)


def _queued_runs() -> dict[int, FlowRun]:
    """Job id -> the queued retry run for it (see `queued_retry_runs`)."""
    queued: dict[int, FlowRun] = {}
    seen = 0
    not_stale = datetime.now(UTC) - STALE_AFTER
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(RETRY_DEPLOYMENT)
        except ObjectNotFound:
            return queued
        while True:
            page = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=QUEUED_STATES)),
                    expected_start_time=FlowRunFilterExpectedStartTime(after_=not_stale),
                ),
                limit=RUNS_PER_PAGE,
                offset=seen,
            )
            seen += len(page)
            for run in page:
                job_id = _job_id_of(run)
                if job_id is not None:
                    queued[job_id] = run
            if len(page) < RUNS_PER_PAGE:
                return queued


def _job_id_of(run: FlowRun) -> int | None:
    """The run's `job_id` parameter, when it is one (a run made by hand may carry anything)."""
    try:
        return int(run.parameters.get("job_id"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
