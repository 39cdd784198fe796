"""The `upload-jobs` command line: add, list, show, retry and sweep jobs, serve, set up, demo."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from upload_jobs.cli import presenters
from upload_jobs.cli.output import (
    EXIT_FAILED,
    EXIT_USAGE,
    JsonOption,
    JsonUsageErrors,
    announce,
    console,
    err_console,
    fail,
    friendly_errors,
)
from upload_jobs.cli.reconcile import reconcile
from upload_jobs.cli.serving import flow_parameters, serve, setup
from upload_jobs.errors import JobAlreadyCompleted, SourceMissing, UploadJobError
from upload_jobs.jobs.database import redacted_url
from upload_jobs.jobs.files import check_source_file
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.pages import MAX_JOB_ID
from upload_jobs.jobs.retry_outcome import RetryOutcome
from upload_jobs.jobs.store import JobStore, claim_refusal
from upload_jobs.jobs.sweeping import SweepMode, SweepReport
from upload_jobs.settings import get_settings
from upload_jobs.storage.object_keys import key_for_new_job, sanitize_object_key
from upload_jobs.web.retries import RetryVia

app = typer.Typer(
    name="upload-jobs",
    help="Retry failed video uploads to DigitalOcean Spaces, optimized for streaming.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
db_app = typer.Typer(help="Manage the job database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

# Bounded like the id column: a larger number is a usage error, not a database overflow.
JobIdArgument = Annotated[int, typer.Argument(min=1, max=MAX_JOB_ID, help="The job's id.")]


def _store() -> JobStore:
    return JobStore(get_settings().database_url)


@app.command(cls=JsonUsageErrors)
def add(
    path: Annotated[Path, typer.Argument(help="The video file to upload.")],
    key: Annotated[
        str | None,
        typer.Option(
            help="Object key in the bucket (default: from UPLOAD_JOBS_KEY_TEMPLATE, "
            "videos/FOLDER/FILE_NAME). A key belongs to one job."
        ),
    ] = None,
    allow_missing: Annotated[
        bool, typer.Option(help="Register the job even if the file is not there yet.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Register a video as a pending upload job."""
    with friendly_errors(json_output):
        settings = get_settings()
        source = _source_path(path, allow_missing, json_output)
        object_key = key_for_new_job(source, settings.key_prefix, settings.key_template, key)
        job = _store().add_job(str(source), object_key)
        if json_output:
            presenters.print_json(console, presenters.job_as_dict(job))
            return
        console.print(
            f"Added upload job {job.id}: {escape(str(source))} -> {escape(job.object_key)}",
            highlight=False,
        )
        console.print(f"Next: [bold]upload-jobs retry {job.id}[/bold]")


def _source_path(path: Path, allow_missing: bool, json_output: bool) -> Path:
    """The absolute path of a source `add` can register; a usage error for any other."""
    try:
        source = path.expanduser().absolute()
    except RuntimeError as exc:  # "~someone/clip.mp4" where no user is called someone
        fail(f"Cannot expand the path {path}: {exc}", EXIT_USAGE, json_output)
    if "\x00" in str(source):
        # No file name can hold NUL: such a job could never run (and PostgreSQL refuses it).
        fail(
            f"Invalid file path {str(source)!r}: it contains a NUL character",
            EXIT_USAGE,
            json_output,
        )
    try:
        check_source_file(source)
    except SourceMissing:
        if not allow_missing:
            fail(
                f"File not found: {source} (use --allow-missing to register it anyway)",
                EXIT_USAGE,
                json_output,
            )
    except UploadJobError as exc:  # an empty, unreadable or non-video file would only fail its run
        fail(str(exc), EXIT_USAGE, json_output, error_kind=exc.error_kind)
    return source


@app.command("list", cls=JsonUsageErrors)
def list_jobs(
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many jobs.")] = 100,
    json_output: JsonOption = False,
) -> None:
    """List upload jobs, newest first, with their OPTIMIZED flag."""
    with friendly_errors(json_output):
        jobs = _store().list_jobs(status=status, limit=limit)
        if json_output:
            presenters.print_json(console, [presenters.job_as_dict(job) for job in jobs])
            return
        if not jobs:
            console.print("No upload jobs" + (f" with status {status}" if status else "") + ".")
            return
        console.print(presenters.jobs_table(jobs))


@app.command("set-key", cls=JsonUsageErrors)
def set_key(
    job_id: JobIdArgument,
    key: Annotated[str, typer.Argument(help="The new object key (under UPLOAD_JOBS_KEY_PREFIX).")],
    json_output: JsonOption = False,
) -> None:
    """Give a pending or failed job another object key, one no other job holds."""
    with friendly_errors(json_output):
        settings = get_settings()
        job = _store().set_object_key(job_id, sanitize_object_key(key, settings.key_prefix))
        if json_output:
            presenters.print_json(console, presenters.job_as_dict(job))
            return
        console.print(
            f"Upload job {job.id} now uploads to {escape(job.object_key)}. "
            f"Next: [bold]upload-jobs retry {job.id}[/bold]",
            highlight=False,
        )


@app.command(cls=JsonUsageErrors)
def show(
    job_id: JobIdArgument,
    json_output: JsonOption = False,
) -> None:
    """Show one job and its attempt history."""
    with friendly_errors(json_output):
        store = _store()
        job = store.get_job(job_id)
        attempts = store.list_attempts(job_id)
        if json_output:
            payload = presenters.job_as_dict(job)
            payload["attempt_history"] = [presenters.attempt_as_dict(a) for a in attempts]
            presenters.print_json(console, payload)
            return
        console.print(presenters.job_details_table(job))
        console.print(presenters.attempts_table(attempts) if attempts else "No attempts yet.")


@app.command(cls=JsonUsageErrors)
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
    json_output: JsonOption = False,
) -> None:
    """Retry one job now, as a Prefect flow run, here or on a served deployment.

    Exit code 0 when the job ends completed, 1 when it ends failed, 2 for an unknown id.
    """
    with friendly_errors(json_output):
        job = _store().get_job(job_id)
        refusal = claim_refusal(job)
        if refusal is not None:
            # No flow run to start (nor a Prefect server): the claim would refuse it the same way.
            completed = isinstance(refusal, JobAlreadyCompleted)
            outcome = RetryOutcome(job, completed, str(refusal), flow_run_id=None)
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


@app.command(cls=JsonUsageErrors)
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
        int | None, typer.Option(min=1, help="Skip jobs tried this often (default: 5).")
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
        report: SweepReport = state.result()
        if json_output:
            presenters.print_json(console, dataclasses.asdict(report))
            return
        console.print(presenters.sweep_table(report))
        if report.stopped_early:
            err_console.print(
                f"[red]Stopped early:[/red] {escape(report.stopped_early)}", highlight=False
            )


HostOption = Annotated[
    str | None, typer.Option(help="Address to serve on (default: UPLOAD_JOBS_WEB_HOST, 127.0.0.1).")
]
PortOption = Annotated[
    int | None,
    typer.Option(min=0, max=65535, help="Port (default: UPLOAD_JOBS_WEB_PORT, 8080)."),
]


@app.command()
def web(
    host: HostOption = None,
    port: PortOption = None,
    retry_via: Annotated[
        RetryVia,
        typer.Option(
            help="Where retries run: the Prefect deployment, this process, or auto (the "
            "deployment when a Prefect server is configured and serves it)."
        ),
    ] = RetryVia.AUTO,
) -> None:
    """Serve the jobs page and its JSON API (docs at /docs) until Ctrl-C."""
    from upload_jobs.web.server import WebServer, choose_retry_setup

    with friendly_errors(json_output=False):
        settings = get_settings()
        setup = choose_retry_setup(retry_via, settings.web_retry_workers, announce)
        server = WebServer(settings, setup, host or settings.web_host, _port(port))
        server.serve_until_interrupted(
            lambda url: console.print(
                f"Jobs page: {url} (JSON API docs: {url}/docs)\n"
                f"{escape(setup.description)}\nCtrl-C stops it.",
                highlight=False,
            )
        )


def _port(port: int | None) -> int:
    return get_settings().web_port if port is None else port


@app.command(cls=JsonUsageErrors)
def demo(
    web: Annotated[
        bool, typer.Option("--web", help="Then serve the jobs page until Ctrl-C.")
    ] = False,
    port: PortOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show the whole product on this machine: local S3 server, sample videos, retries."""
    from upload_jobs.cli.demo import run_demo

    with friendly_errors(json_output):
        exit_code = run_demo(
            console, json_output=json_output, web_port=_port(port) if web else None
        )
    raise typer.Exit(exit_code)


@db_app.command("upgrade", cls=JsonUsageErrors)
def db_upgrade(
    rekey_duplicates: Annotated[
        bool,
        typer.Option(
            "--rekey-duplicates",
            help="Jobs that share an object key (added before keys were unique): keep each key "
            "for its oldest job, give the others KEY-jobID keys (completed ones are set back to "
            "failed, to be uploaded there).",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Create or migrate the job tables to the newest schema."""
    with friendly_errors(json_output):
        from upload_jobs.jobs.database import create_job_engine, get_engine, upgrade_schema

        url = get_settings().database_url
        if rekey_duplicates:
            engine = create_job_engine(url)
            upgrade_schema(engine, rekey_duplicates=True)
            engine.dispose()
        get_engine(url)
        if json_output:
            presenters.print_json(console, {"database": redacted_url(url), "schema": "current"})
            return
        console.print(
            f"Job database {escape(redacted_url(url))} is at the newest schema.", highlight=False
        )


# Commands kept in their own modules (this one is at its size limit), listed after the others.
for command in (serve, setup, reconcile):
    app.command(cls=JsonUsageErrors)(command)
