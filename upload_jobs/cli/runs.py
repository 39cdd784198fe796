"""`upload-jobs retry` and `sweep`: flow runs, here or on a served deployment."""

from __future__ import annotations

import dataclasses
from typing import Annotated, cast

import typer
from rich.markup import escape

from upload_jobs.cli import presenters
from upload_jobs.cli.jobs import JobIdArgument, PresetOption, job_store
from upload_jobs.cli.output import (
    EXIT_FAILED,
    JsonOption,
    announce,
    console,
    err_console,
    fail,
    friendly_errors,
)
from upload_jobs.cli.serving import flow_parameters
from upload_jobs.errors import JobAlreadyCompleted
from upload_jobs.jobs.claims import ClaimRefused, claim_refusal
from upload_jobs.jobs.leases import take_back_if_gone
from upload_jobs.jobs.retry_outcome import RetryOutcome, failed_outcome
from upload_jobs.jobs.retry_policy import retry_policy
from upload_jobs.jobs.sweeping import SweepMode, SweepReport
from upload_jobs.settings import get_settings


def retry(
    job_id: JobIdArgument,
    via_deployment: Annotated[
        bool,
        typer.Option(
            "--via-deployment",
            help="Run it on whatever serves retry-upload-job/on-demand (`upload-jobs serve` "
            "or a worker) instead of in this process.",
        ),
    ] = False,
    wait: Annotated[
        bool, typer.Option(help="With --via-deployment: wait for the run to finish.")
    ] = True,
    timeout: Annotated[
        int, typer.Option(min=1, help="With --via-deployment: seconds to wait at most.")
    ] = 3600,
    preset: PresetOption = None,
    json_output: JsonOption = False,
) -> None:
    """Retry one job now, as a Prefect flow run, here or on a served deployment. With
    --preset, the job keeps that preset; a completed job is uploaded again in its form.

    Exit code 0 when the job ends completed, 1 when it ends failed, 2 for an unknown id.
    """
    with friendly_errors(json_output):
        store = job_store()
        job = store.get_job(job_id)
        if preset is not None:
            job = store.request_preset(job_id, str(preset))
        if taken := take_back_if_gone(store, job):  # its run is gone: no need to wait for it
            err_console.print(escape(taken), highlight=False)
            job = store.get_job(job_id)
        refusal = claim_refusal(job)
        if refusal is not None:
            # No flow run to start (nor a Prefect server): the claim would refuse it the same way.
            completed = isinstance(refusal, JobAlreadyCompleted)
            outcome = RetryOutcome(job, completed, str(refusal), flow_run_id=None)
        elif problem := store.refuse_unusable_source(job, retry_policy(get_settings())):
            # As the run's claim would: recorded on the job, no attempt spent, no run started.
            said = ClaimRefused(job_id, problem).sentence()
            outcome = failed_outcome(store.get_job(job_id), said, problem.error_kind, None)
        elif via_deployment:
            outcome = _retry_via_deployment(job_id, wait, timeout, json_output)
        else:
            from deployments.server import prefect_server_for_runs
            from flows.runs import run_retry_flow

            prefect_server_for_runs(announce)
            outcome = run_retry_flow(job_id)
        if json_output:
            presenters.print_json(
                console,
                {
                    "message": outcome.message,
                    "flow_run_id": outcome.flow_run_id,
                    "job": presenters.job_as_dict(outcome.job),
                },
            )
        elif outcome.succeeded:
            console.print(f"[green]{escape(outcome.message)}[/green]", highlight=False)
        else:
            err_console.print(f"[red]{escape(outcome.message)}[/red]", highlight=False)
        raise typer.Exit(0 if outcome.succeeded else EXIT_FAILED)


def _retry_via_deployment(job_id: int, wait: bool, timeout: int, json_output: bool) -> RetryOutcome:
    from deployments.trigger import (
        finished_retry_outcome,
        flow_run_url,
        start_retry,
        wait_for_retry,
    )

    flow_run = start_retry(job_id)
    started = {"flow_run_id": str(flow_run.id), "flow_run_name": flow_run.name}
    url = flow_run_url(flow_run)
    if not wait:
        message = f"Started flow run {flow_run.name} for upload job {job_id}: {url}"
        if json_output:
            presenters.print_json(console, {"message": message, **started, "url": url})
        else:
            console.print(escape(message), highlight=False)
        raise typer.Exit(0)
    if not json_output:
        err_console.print(
            f"Started flow run {escape(flow_run.name)}, waiting for it to finish: {url}",
            highlight=False,
        )
    finished = wait_for_retry(flow_run, timeout)
    if finished is None:
        fail(
            f"Flow run {flow_run.name} for upload job {job_id} has not finished after "
            f"{timeout} s. Follow it at {url}, then `upload-jobs show {job_id}`.",
            EXIT_FAILED,
            json_output,
            **started,
        )
    return finished_retry_outcome(job_id, finished)


def sweep(
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many jobs (default: the flow's, 50).")
    ] = None,
    mode: Annotated[
        SweepMode | None,
        typer.Option(
            help="local: retries run in this process; distributed: one "
            "retry-upload-job/on-demand run per job, for workers (default: local)."
        ),
    ] = None,
    max_attempts: Annotated[
        int | None,
        typer.Option(
            min=1, help="Skip jobs tried this often (default: UPLOAD_JOBS_MAX_ATTEMPTS, 5)."
        ),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Local mode: retries at once (default: 2).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Retry the failed jobs that are due, once, now, as the scheduled sweep would.

    Exit code 0 when the sweep ran (whatever happened to each job), 1 when it crashed.
    """
    with friendly_errors(json_output):
        parameters = flow_parameters(
            limit=limit, mode=mode, max_attempts=max_attempts, concurrency=concurrency
        )
        if mode == SweepMode.DISTRIBUTED:
            from deployments.trigger import require_retry_deployment

            require_retry_deployment()
        from deployments.server import prefect_server_for_runs
        from flows.heartbeats import without_heartbeats
        from flows.runs import expected_failures_in_one_line
        from flows.sweep import sweep_failed_uploads

        prefect_server_for_runs(announce)
        expected_failures_in_one_line()
        # Run here, watched: no need to pay the heartbeat thread's join at its end.
        with without_heartbeats():
            state = sweep_failed_uploads(**parameters, return_state=True)
        if not state.is_completed():
            fail(f"The sweep did not finish: {state.message}", EXIT_FAILED, json_output)
        report = cast(SweepReport, state.result())
        if json_output:
            presenters.print_json(console, dataclasses.asdict(report))
            return
        console.print(presenters.sweep_table(report))
        if report.stopped_early:
            err_console.print(
                f"[red]Stopped early:[/red] {escape(report.stopped_early)}", highlight=False
            )
