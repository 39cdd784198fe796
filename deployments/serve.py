"""One process serving both deployments against a Prefect server, no work pool needed.

`retry-upload-job/on-demand` runs one job when asked (UI, CLI, REST API, distributed sweeps);
`sweep-failed-uploads/scheduled` sweeps failed jobs on a cron schedule, never two at once.
Run it with `upload-jobs serve`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import RunnerDeployment
from prefect.types.entrypoint import EntrypointType
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from deployments import DEFAULT_SWEEP_CRON, RETRY_DEPLOYMENT, SWEEP_DEPLOYMENT
from deployments.event_triggers import retry_triggers
from deployments.runner import ServingRunner
from deployments.schedule_check import wait_for_scheduled_sweeps
from deployments.server import require_prefect_server
from flows.retry_upload import retry_upload_job
from flows.sweep import sweep_failed_uploads
from tasks.queued_runs import name_queued_retry_runs
from upload_jobs.jobs.retry_policy import retry_policy
from upload_jobs.settings import get_settings

# Why serving needs a real server, for the refusal when there is none.
SERVE_NEEDS = (
    "`upload-jobs serve`",
    "Prefect's runner cannot schedule runs on a temporary server, so the sweep would never fire",
)
# A sweep that is still running when the next one is due makes the new one pointless (it would
# find the same jobs): cancel it rather than queue sweeps up behind a slow one.
ONE_SWEEP_AT_A_TIME = ConcurrencyLimitConfig(
    limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
)
# Prefect's runner asks for runs every 10 s unless told otherwise; so does the naming of runs.
DEFAULT_POLL_SECONDS = 10.0
logger = logging.getLogger(__name__)


class ServeSettings(BaseSettings):
    """What serving reads from the environment: `UPLOAD_JOBS_SWEEP_CRON`, `..._SWEEP_PARAMETERS`,
    `..._SCHEDULE_CHECK_SECONDS`."""

    model_config = SettingsConfigDict(env_prefix="UPLOAD_JOBS_", env_file=".env", extra="ignore")

    sweep_cron: str = DEFAULT_SWEEP_CRON
    # JSON, e.g. {"mode": "distributed", "limit": 100}: defaults for every scheduled sweep.
    sweep_parameters: dict[str, Any] = Field(default_factory=dict)
    # How long serving waits for the server to schedule the sweep before it says it did not.
    schedule_check_seconds: float = Field(default=60.0, gt=0)

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
    say: Callable[[str], None] = print,
) -> None:
    """Serve the deployments (default: `build_deployments()`) until Ctrl-C or SIGTERM.

    `limit` caps flow runs at once in this process; `poll_seconds` is how often it asks for
    work. `say` hears, in a sentence each, whether the server scheduled the sweep, and that
    serving is stopping.
    """
    require_prefect_server(*SERVE_NEEDS)  # fail now, not after Prefect started a throwaway one
    served = deployments if deployments is not None else build_deployments()
    runner = ServingRunner(
        limit=limit,
        query_seconds=poll_seconds,
        pause_on_shutdown=True,
        on_stopping=lambda signal_name: say(
            f"{signal_name}: stopping. Runs still going are interrupted and their jobs given "
            "back; finished runs keep their state. The sweep's schedule is paused until serving "
            "again."
        ),
    )
    for deployment in served:
        runner.add_deployment(deployment)
    checks = ServeSettings()
    _in_background(lambda: say(wait_for_scheduled_sweeps(checks.schedule_check_seconds).message))
    _in_background(lambda: _name_queued_runs_every(poll_seconds or DEFAULT_POLL_SECONDS, runner))
    # Ctrl-C stops serving as SIGTERM does (the runner sets that one itself once started).
    signal.signal(signal.SIGINT, runner.handle_sigterm)
    asyncio.run(runner.start())


def _in_background(work: Callable[[], object]) -> None:
    """Run `work` in a daemon thread; its failure is logged, never the end of serving."""

    def guarded() -> None:
        try:
            work()
        except Exception:
            logger.exception("A background check of `upload-jobs serve` failed")

    threading.Thread(target=guarded, name="serve-checks", daemon=True).start()


def _name_queued_runs_every(seconds: float, runner: ServingRunner) -> None:
    """Name queued retry runs for their jobs as long as serving goes on."""
    while not runner.stopping:
        try:
            name_queued_retry_runs()
        except Exception as exc:  # a server blip: the next round names them
            logger.debug("Could not name queued retry runs: %s", exc)
        time.sleep(seconds)
