"""The two deployments, as `prefect.yaml` declares them and as `upload-jobs serve` builds them."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.client.schemas.schedules import CronSchedule
from prefect.events.schemas.automations import AutomationCore
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.settings import get_current_settings
from prefect.utilities.templating import apply_values
from pydantic import ValidationError

from deployments import (
    DEFAULT_SWEEP_CRON,
    RETRY_DEPLOYMENT,
    SWEEP_DEPLOYMENT,
    WORK_POOL,
)
from deployments.event_triggers import retry_triggers
from deployments.serve import build_deployments, describe
from deployments.setup import ensure_work_pool
from flows.retry_upload import retry_upload_job
from flows.sweep import sweep_failed_uploads
from tests.support.serving import delete_deployments
from upload_jobs.jobs.retry_policy import RetryPolicy
from upload_jobs.jobs.sweeping import SweepMode
from upload_jobs.settings import get_settings

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prefect_yaml() -> dict[str, Any]:
    """prefect.yaml as YAML sees it: anchors already resolved."""
    loaded: dict[str, Any] = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    return loaded


def by_name(prefect_yaml: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """prefect.yaml's deployments keyed by their full `flow/deployment` name."""
    return {f"{flow_at(d['entrypoint']).name}/{d['name']}": d for d in prefect_yaml["deployments"]}


def flow_at(entrypoint: str) -> Flow[Any, Any]:
    """The flow object a `path/to/file.py:name` entrypoint names, imported as a module."""
    path, _, name = entrypoint.partition(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    flow: Flow[Any, Any] = getattr(module, name)
    return flow


def test_prefect_yaml_declares_both_deployments_in_the_pool(prefect_yaml: dict[str, Any]) -> None:
    deployments = by_name(prefect_yaml)
    assert set(deployments) == {RETRY_DEPLOYMENT, SWEEP_DEPLOYMENT}
    assert flow_at(deployments[RETRY_DEPLOYMENT]["entrypoint"]) is retry_upload_job
    assert flow_at(deployments[SWEEP_DEPLOYMENT]["entrypoint"]) is sweep_failed_uploads
    pools = [deployment["work_pool"] for deployment in deployments.values()]
    assert all(pool["name"] == WORK_POOL for pool in pools)
    # One anchor, not two copies: YAML hands back the very same mapping for both.
    assert pools[0] is pools[1]
    assert not any(deployment.get("tags") for deployment in deployments.values())


def test_prefect_yaml_sweep_runs_alone_on_the_cron_in_distributed_mode(
    prefect_yaml: dict[str, Any],
) -> None:
    sweep = by_name(prefect_yaml)[SWEEP_DEPLOYMENT]
    limit = ConcurrencyLimitConfig.model_validate(sweep["concurrency_limit"])
    assert limit.limit == 1 and limit.collision_strategy == ConcurrencyLimitStrategy.CANCEL_NEW
    [schedule] = sweep["schedules"]
    assert CronSchedule.model_validate(schedule).cron == DEFAULT_SWEEP_CRON
    assert SweepMode(sweep["parameters"]["mode"]) == SweepMode.DISTRIBUTED
    assert set(sweep["parameters"]) <= set(sweep_failed_uploads.parameters.properties)


def test_prefect_yaml_pull_step_finds_the_entrypoints_in_the_worker_checkout(
    prefect_yaml: dict[str, Any],
) -> None:
    # What a worker with UPLOAD_JOBS_CHECKOUT set does before it imports the entrypoint.
    [step] = apply_values(prefect_yaml["pull"], {"UPLOAD_JOBS_CHECKOUT": str(REPO_ROOT)})
    directory = Path(step["prefect.deployments.steps.set_working_directory"]["directory"])
    for deployment in prefect_yaml["deployments"]:
        assert (directory / deployment["entrypoint"].partition(":")[0]).is_file()


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_prefect_deploy_all_registers_what_prefect_yaml_says() -> None:
    with get_client(sync_client=True) as client:
        ensure_work_pool(client)
    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url)}
    deploy = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        with get_client(sync_client=True) as client:
            retry = client.read_deployment_by_name(RETRY_DEPLOYMENT)
            sweep = client.read_deployment_by_name(SWEEP_DEPLOYMENT)
            automations = {a.name: a for a in client.read_automations()}
    finally:
        delete_deployments()
    assert retry.work_pool_name == sweep.work_pool_name == WORK_POOL
    assert retry.pull_steps == sweep.pull_steps and retry.pull_steps
    assert sweep.parameters == {"mode": "distributed"}
    assert sweep.global_concurrency_limit and sweep.global_concurrency_limit.limit == 1
    assert [s.schedule.cron for s in sweep.schedules] == [DEFAULT_SWEEP_CRON]
    # The event triggers became automations that run the retry deployment.
    for trigger in retry_triggers(RetryPolicy()):
        assert trigger.name is not None
        [action] = automations[trigger.name].actions
        assert getattr(action, "deployment_id", None) == retry.id


def test_prefect_yaml_triggers_are_those_serve_builds_for_the_default_policy(
    prefect_yaml: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    declared = [
        DeploymentEventTrigger.model_validate(trigger).model_dump(mode="json")
        for trigger in by_name(prefect_yaml)[RETRY_DEPLOYMENT]["triggers"]
    ]
    for name in ("UPLOAD_JOBS_RETRY_BACKOFF_SECONDS", "UPLOAD_JOBS_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    retry, _ = build_deployments()
    served = [trigger.model_dump(mode="json") for trigger in retry.triggers]
    assert declared == served
    assert [t["schedule_after"] for t in served] == [60, 120, 240, 480]
    assert all(
        t["match"]["upload-job.retry-after-seconds"] == f"{t['schedule_after']:g}" for t in served
    )

    # Served with another policy, the triggers follow it: 5 s, 10 s, then no automatic retry.
    monkeypatch.setenv("UPLOAD_JOBS_RETRY_BACKOFF_SECONDS", "5")
    monkeypatch.setenv("UPLOAD_JOBS_MAX_ATTEMPTS", "3")
    get_settings.cache_clear()
    retry, _ = build_deployments()
    get_settings.cache_clear()
    assert [t.schedule_after.total_seconds() for t in retry.triggers] == [5, 10]
    assert "2 event triggers" in describe([retry])[0]["runs"]


def test_the_automation_file_is_two_valid_automations() -> None:
    loaded = yaml.safe_load((REPO_ROOT / "automations" / "notify-upload-failures.yaml").read_text())
    automations = [AutomationCore.model_validate(a) for a in loaded["automations"]]
    assert [a.trigger.threshold for a in automations] == [1, 5]  # type: ignore[union-attr]


def test_served_deployments_names_schedule_and_one_sweep_at_a_time() -> None:
    retry, sweep = build_deployments()
    assert f"{retry.flow_name}/{retry.name}" == RETRY_DEPLOYMENT
    assert f"{sweep.flow_name}/{sweep.name}" == SWEEP_DEPLOYMENT
    assert list(retry._parameter_openapi_schema.properties) == ["job_id"]
    assert not retry.schedules and retry.concurrency_limit is None
    assert [s.schedule.cron for s in sweep.schedules or []] == [DEFAULT_SWEEP_CRON]
    assert sweep.concurrency_limit == 1
    assert sweep.concurrency_options is not None
    assert sweep.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.CANCEL_NEW
    assert sweep.parameters == {}
    # Served from this process, whatever prefect.yaml registered under the same names before.
    assert retry.work_pool_name is None and "work_pool_name" in retry.model_fields_set
    # Module paths: the runner's flow-run process imports them from wherever it was started.
    for deployment, flow in ((retry, retry_upload_job), (sweep, sweep_failed_uploads)):
        module, _, name = (deployment.entrypoint or "").rpartition(".")
        assert getattr(importlib.import_module(module), name) is flow


def test_served_sweep_cron_and_parameters_come_from_arguments_or_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UPLOAD_JOBS_SWEEP_CRON", "0 * * * *")
    monkeypatch.setenv("UPLOAD_JOBS_SWEEP_PARAMETERS", '{"mode": "distributed", "limit": 10}')
    _, sweep = build_deployments()
    assert [s.schedule.cron for s in sweep.schedules or []] == ["0 * * * *"]
    assert sweep.parameters == {"mode": "distributed", "limit": 10}

    _, sweep = build_deployments("5 4 * * *", {"limit": 3})
    assert [s.schedule.cron for s in sweep.schedules or []] == ["5 4 * * *"]
    assert sweep.parameters == {"mode": "distributed", "limit": 3}
    assert describe([sweep])[0]["parameters"] == "mode=distributed, limit=3"

    with pytest.raises(ValidationError, match="unknown sweep parameters"):
        build_deployments(sweep_parameters={"limt": 3})
    with pytest.raises(ValidationError, match="not a cron expression"):
        build_deployments("every 15 minutes")
