"""Whether the Prefect server really schedules the sweep: a cron deployment can show "Ready" in
the UI while the server's scheduler makes no run of it (its service off, or failing: Prefect
3.9.1 with whenever < 0.11 failed on every cron schedule and said so only in its own log)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound
from prefect.settings import get_current_settings

from deployments import SWEEP_DEPLOYMENT

POLL_SECONDS = 1.0
SHOWN_RUNS = 3


@dataclass(frozen=True)
class ScheduleCheck:
    """What the server had scheduled for the sweep, and a sentence for people."""

    scheduled: list[datetime]
    message: str

    @property
    def ok(self) -> bool:
        """Whether the server scheduled the sweep's next runs."""
        return bool(self.scheduled)


def wait_for_scheduled_sweeps(
    within_seconds: float, sleep: Callable[[float], None] = time.sleep
) -> ScheduleCheck:
    """The sweep's next scheduled runs, waiting up to `within_seconds` for the server to make
    them; when it made none, why (its scheduler's setting, else its log)."""
    deadline = time.monotonic() + within_seconds
    while True:
        times = _scheduled_sweep_times()
        if times:
            shown = ", ".join(f"{when:%H:%M}" for when in times[:SHOWN_RUNS])
            return ScheduleCheck(
                times, f"The Prefect server has scheduled the next sweeps: {shown} (UTC)."
            )
        if time.monotonic() >= deadline:
            return ScheduleCheck([], _why_unscheduled(within_seconds))
        sleep(POLL_SECONDS)


def _scheduled_sweep_times() -> list[datetime]:
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(SWEEP_DEPLOYMENT)
        except ObjectNotFound:
            return []
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=SHOWN_RUNS,
        )
    return [run.expected_start_time for run in runs if run.expected_start_time is not None]


def _why_unscheduled(waited: float) -> str:
    said = (
        f"The Prefect server has scheduled no run of {SWEEP_DEPLOYMENT} in {waited:.0f} s, so "
        "failed jobs are not swept on their own"
    )
    if _scheduler_enabled() is False:
        return (
            f"{said}: its scheduler service is off (PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="
            "false where `prefect server start` runs). Turn it on, or run `upload-jobs sweep` "
            "from cron."
        )
    return (
        f"{said}: its scheduler service is on but made none; see the server's log for "
        "'scheduler' errors (Prefect 3.9.1 needs whenever 0.11 for cron schedules)."
    )


def _scheduler_enabled() -> bool | None:
    """The server's own setting, from its admin API; None when it does not say."""
    api_url = str(get_current_settings().api.url or "")
    try:
        answer = httpx.get(f"{api_url}/admin/settings", timeout=5)
        answer.raise_for_status()
        settings: Any = answer.json()
        enabled = settings["server"]["services"]["scheduler"]["enabled"]
    except (httpx.HTTPError, KeyError, TypeError, ValueError):
        return None
    return bool(enabled)
