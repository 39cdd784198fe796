"""One process serving both deployments against a Prefect server, no work pool needed.

`retry-upload-job/on-demand` runs one job when asked (UI, CLI, REST API, distributed sweeps);
`sweep-failed-uploads/scheduled` sweeps failed jobs on a cron schedule, never two at once.
Run it with `upload-jobs serve`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import RunnerDeployment
from prefect.types.entrypoint import EntrypointType
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from deployments import DEFAULT_SWEEP_CRON, RETRY_DEPLOYMENT, SWEEP_DEPLOYMENT
from deployments.event_triggers import retry_triggers
from deployments.server import require_prefect_server
from flows.retry_upload import retry_upload_job
from flows.sweep import sweep_failed_uploads
from upload_jobs.jobs.retry_policy import retry_policy
from upload_jobs.settings import get_settings

# A sweep that is still running when the next one is due makes the new one pointless (it would
# find the same jobs): cancel it rather than queue sweeps up behind a slow one.
# Why serving needs a real server, for the refusal when there is none.
SERVE_NEEDS = (
    "`upload-jobs serve`",
    "Prefect's runner cannot schedule runs on a temporary server, so the sweep would never fire",
)
ONE_SWEEP_AT_A_TIME = ConcurrencyLimitConfig(
    limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
)


class ServeSettings(BaseSettings):
    """What serving reads from the environment: `UPLOAD_JOBS_SWEEP_CRON`, `..._SWEEP_PARAMETERS`."""

    model_config = SettingsConfigDict(env_prefix="UPLOAD_JOBS_", env_file=".env", extra="ignore")

    sweep_cron: str = DEFAULT_SWEEP_CRON
    # JSON, e.g. {"mode": "distributed", "limit": 100}: defaults for every scheduled sweep.
    sweep_parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("sweep_cron")
    @classmethod
    def _cron_prefect_accepts(cls, cron: str) -> str:
        try:
            CronSchedule(cron=cron)
        except ValidationError:
            raise ValueError(f"not a cron expression Prefect accepts: {cron!r}") from None
        return cron

    @field_validator("sweep_parameters")
    @classmethod
    def _sweep_parameters_only(cls, parameters: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(parameters) - set(sweep_failed_uploads.parameters.properties))
        if unknown:
            raise ValueError(f"unknown sweep parameters {unknown}, see `upload-jobs sweep --help`")
        return parameters


def _deployment_name(full_name: str) -> str:
    return full_name.partition("/")[2]


def build_deployments(
    sweep_cron: str | None = None, sweep_parameters: Mapping[str, Any] | None = None
) -> list[RunnerDeployment]:
    """The retry and sweep deployments; arguments override the environment's cron and parameters."""
    environment = ServeSettings()
    # model_validate, not the constructor: validate the merged values without re-reading env.
    settings = ServeSettings.model_validate(
        {
            "sweep_cron": sweep_cron or environment.sweep_cron,
            "sweep_parameters": {**environment.sweep_parameters, **(sweep_parameters or {})},
        }
    )
    # Called outside an event loop, to_deployment returns the deployment, not a coroutine.
    retry: RunnerDeployment = retry_upload_job.to_deployment(  # type: ignore[assignment]
        name=_deployment_name(RETRY_DEPLOYMENT),
        description="Retry one upload job now: run it with the parameter job_id.",
        entrypoint_type=EntrypointType.MODULE_PATH,
        # Unpacked: `to_deployment` wants a list of any trigger type (a list is invariant).
        triggers=[*retry_triggers(retry_policy(get_settings()))],
    )
    sweep: RunnerDeployment = sweep_failed_uploads.to_deployment(  # type: ignore[assignment]
        name=_deployment_name(SWEEP_DEPLOYMENT),
        cron=settings.sweep_cron,
        parameters=settings.sweep_parameters,
        concurrency_limit=ONE_SWEEP_AT_A_TIME,
        description="Retry the failed upload jobs that are due, reap lost runs, tidy up.",
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    for deployment in (retry, sweep):
        # Set explicitly so re-serving a deployment once registered from prefect.yaml takes it
        # out of the work pool: Prefect only updates the fields a deployment has set.
        deployment.work_pool_name = None
        deployment.work_queue_name = None
    return [retry, sweep]


def describe(deployments: list[RunnerDeployment]) -> list[dict[str, str]]:
    """One row per deployment: its full name, when it runs, its default parameters."""
    rows = []
    for deployment in deployments:
        crons = [getattr(s.schedule, "cron", str(s.schedule)) for s in deployment.schedules or []]
        runs = ", ".join(f"cron {cron} (UTC)" for cron in crons) or "on demand"
        if deployment.concurrency_limit == 1:
            runs += ", one at a time"
        if deployment.triggers:
            runs += f" + {len(deployment.triggers)} event triggers"
        parameters = ", ".join(f"{k}={v}" for k, v in deployment.parameters.items())
        rows.append(
            {
                "deployment": f"{deployment.flow_name}/{deployment.name}",
                "runs": runs,
                "parameters": parameters or "flow defaults",
            }
        )
    return rows


def serve_deployments(
    deployments: list[RunnerDeployment] | None = None,
    limit: int | None = None,
    poll_seconds: float | None = None,
) -> None:
    """Serve the deployments (default: `build_deployments()`) until Ctrl-C or SIGTERM.

    `limit` caps flow runs at once in this process; `poll_seconds` is how often it asks for work.
    """
    require_prefect_server(*SERVE_NEEDS)  # fail now, not after Prefect started a throwaway one
    served = deployments if deployments is not None else build_deployments()
    serve(*served, limit=limit, query_seconds=poll_seconds, print_starting_message=False)
