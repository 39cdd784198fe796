"""The `upload-jobs` command line: add, list, show and retry jobs, run the demo."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from upload_jobs import presenters
from upload_jobs.database import redacted_url
from upload_jobs.errors import JobNotFound, UploadJobError
from upload_jobs.models import JobStatus
from upload_jobs.object_keys import object_key_for, sanitize_object_key
from upload_jobs.settings import get_settings
from upload_jobs.store import JobStore

EXIT_FAILED = 1
EXIT_USAGE = 2

app = typer.Typer(
    name="upload-jobs",
    help="Retry failed video uploads to DigitalOcean Spaces, optimized for streaming.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
db_app = typer.Typer(help="Manage the job database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

console = Console()
err_console = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _fail(message: str, code: int, json_output: bool, **extra: object) -> NoReturn:
    if json_output:
        presenters.print_json(console, {"error": message, **extra})
    else:
        err_console.print(f"[red]Error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def _friendly_errors(json_output: bool) -> Iterator[None]:
    """Turn known failures into one readable line and an exit code instead of a traceback."""
    try:
        yield
    except JobNotFound as exc:
        _fail(
            f"{exc}. See `upload-jobs list` for the ids.",
            EXIT_USAGE,
            json_output,
            error_kind=exc.error_kind,
        )
    except UploadJobError as exc:
        _fail(str(exc), EXIT_FAILED, json_output, error_kind=exc.error_kind)
    except ValidationError as exc:
        problems = "; ".join(
            f"UPLOAD_JOBS_{'_'.join(map(str, error['loc'])).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        _fail(f"Invalid setting: {problems}", EXIT_USAGE, json_output)
    except SQLAlchemyError as exc:
        url = redacted_url(get_settings().database_url)
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        _fail(
            f"Cannot use the job database {url}: {reason}. "
            "Check UPLOAD_JOBS_DATABASE_URL and that the database is running.",
            EXIT_FAILED,
            json_output,
        )


def _store() -> JobStore:
    return JobStore(get_settings().database_url)


@app.command()
def add(
    path: Annotated[Path, typer.Argument(help="The video file to upload.")],
    key: Annotated[
        str | None, typer.Option(help="Object key in the bucket (default: videos/FILE_NAME).")
    ] = None,
    allow_missing: Annotated[
        bool, typer.Option(help="Register the job even if the file is not there yet.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Register a video as a pending upload job."""
    with _friendly_errors(json_output):
        settings = get_settings()
        source = path.expanduser().absolute()
        if not allow_missing and not source.is_file():
            _fail(
                f"File not found: {source} (use --allow-missing to register it anyway)",
                EXIT_USAGE,
                json_output,
            )
        object_key = sanitize_object_key(
            key or object_key_for(source, settings.key_prefix), settings.key_prefix
        )
        job = _store().add_job(str(source), object_key)
        if json_output:
            presenters.print_json(console, presenters.job_as_dict(job))
            return
        console.print(
            f"Added upload job {job.id}: {escape(str(source))} -> {escape(object_key)}",
            highlight=False,
        )
        console.print(f"Next: [bold]upload-jobs retry {job.id}[/bold]")


@app.command("list")
def list_jobs(
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many jobs.")] = 100,
    json_output: JsonOption = False,
) -> None:
    """List upload jobs, newest first, with their OPTIMIZED flag."""
    with _friendly_errors(json_output):
        jobs = _store().list_jobs(status=status, limit=limit)
        if json_output:
            presenters.print_json(console, [presenters.job_as_dict(job) for job in jobs])
            return
        if not jobs:
            console.print("No upload jobs" + (f" with status {status}" if status else "") + ".")
            return
        console.print(presenters.jobs_table(jobs))


@app.command()
def show(
    job_id: Annotated[int, typer.Argument(help="The job's id.")],
    json_output: JsonOption = False,
) -> None:
    """Show one job and its attempt history."""
    with _friendly_errors(json_output):
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


@app.command()
def retry(
    job_id: Annotated[int, typer.Argument(help="The job's id.")],
    json_output: JsonOption = False,
) -> None:
    """Retry one job now, in this process, as a Prefect flow run.

    Exit code 0 when the job ends completed, 1 when it ends failed, 2 for an unknown id.
    """
    with _friendly_errors(json_output):
        store = _store()
        store.get_job(job_id)
        from flows.runs import run_retry_flow

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


@app.command()
def demo(json_output: JsonOption = False) -> None:
    """Show the whole product on this machine: local S3 server, sample videos, retries."""
    from upload_jobs.demo import run_demo

    with _friendly_errors(json_output):
        exit_code = run_demo(console, json_output=json_output)
    raise typer.Exit(exit_code)


@db_app.command("upgrade")
def db_upgrade(json_output: JsonOption = False) -> None:
    """Create or migrate the job tables to the newest schema."""
    with _friendly_errors(json_output):
        from upload_jobs.database import get_engine

        url = get_settings().database_url
        get_engine(url)
        if json_output:
            presenters.print_json(console, {"database": redacted_url(url), "schema": "current"})
            return
        console.print(
            f"Job database {escape(redacted_url(url))} is at the newest schema.", highlight=False
        )


if __name__ == "__main__":
    app()
