"""Flow runs of a deployment on the test's Prefect server: read them, delete them."""

from __future__ import annotations

import contextlib
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound

PAGE = 200


def runs_of(deployment_id: UUID) -> list[FlowRun]:
    """The deployment's flow runs (the first 200: more than any test starts)."""
    of_it = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(deployment_filter=of_it, limit=PAGE)


def delete_runs_of(deployment_id: UUID) -> None:
    """Delete every flow run of the deployment, however many there are."""
    with get_client(sync_client=True) as client:
        while runs := runs_of(deployment_id):
            for run in runs:
                with contextlib.suppress(ObjectNotFound):
                    client.delete_flow_run(run.id)
