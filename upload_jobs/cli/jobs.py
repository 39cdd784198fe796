"""`upload-jobs add`, `list`, `set-key` and `show`: the job table, never Prefect (a test checks)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from upload_jobs.cli import presenters
from upload_jobs.cli.output import EXIT_USAGE, JsonOption, console, fail, friendly_errors
from upload_jobs.errors import SourceMissing, UploadJobError
from upload_jobs.jobs.files import check_source_file
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.pages import MAX_JOB_ID
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Preset, get_settings
from upload_jobs.storage.object_keys import key_for_new_job, sanitize_object_key

# Bounded like the id column: a larger number is a usage error, not a database overflow.
JobIdArgument = Annotated[int, typer.Argument(min=1, max=MAX_JOB_ID, help="The job's id.")]
PresetOption = Annotated[
    Preset | None,
    typer.Option(
        case_sensitive=False,
        help="How this job's video is prepared (default: UPLOAD_JOBS_PRESET): none, faststart, "
        "fragmented, hls (HLS segments of its own tracks) or abr (an adaptive HLS ladder).",
    ),
]


def job_store() -> JobStore:
    """The job table the settings name."""
    return JobStore(get_settings().database_url)


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
    preset: PresetOption = None,
    json_output: JsonOption = False,
) -> None:
    """Register a video as a pending upload job."""
    with friendly_errors(json_output):
        settings = get_settings()
        source = _source_path(path, allow_missing, json_output)
        object_key = key_for_new_job(source, settings.key_prefix, settings.key_template, key)
        job = job_store().add_job(
            str(source), object_key, requested_preset=str(preset) if preset else None
        )
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


def list_jobs(
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many jobs.")] = 100,
    json_output: JsonOption = False,
) -> None:
    """List upload jobs, newest first, with their OPTIMIZED flag."""
    with friendly_errors(json_output):
        jobs = job_store().list_jobs(status=status, limit=limit)
        if json_output:
            presenters.print_json(console, [presenters.job_as_dict(job) for job in jobs])
            return
        if not jobs:
            console.print("No upload jobs" + (f" with status {status}" if status else "") + ".")
            return
        console.print(presenters.jobs_table(jobs))


def set_key(
    job_id: JobIdArgument,
    key: Annotated[str, typer.Argument(help="The new object key (under UPLOAD_JOBS_KEY_PREFIX).")],
    json_output: JsonOption = False,
) -> None:
    """Give a pending or failed job another object key, one no other job holds."""
    with friendly_errors(json_output):
        settings = get_settings()
        job = job_store().set_object_key(job_id, sanitize_object_key(key, settings.key_prefix))
        if json_output:
            presenters.print_json(console, presenters.job_as_dict(job))
            return
        console.print(
            f"Upload job {job.id} now uploads to {escape(job.object_key)}. "
            f"Next: [bold]upload-jobs retry {job.id}[/bold]",
            highlight=False,
        )


def show(
    job_id: JobIdArgument,
    json_output: JsonOption = False,
) -> None:
    """Show one job and its attempt history."""
    with friendly_errors(json_output):
        store = job_store()
        job = store.get_job(job_id)
        attempts = store.list_attempts(job_id)
        measured = [a for a in attempts if a.optimization_path or a.uploaded_startup_bytes]
        if json_output:
            payload = presenters.job_as_dict(job)
            payload["attempt_history"] = [presenters.attempt_as_dict(a) for a in attempts]
            payload["streaming"] = presenters.streaming_as_dict(measured[-1] if measured else None)
            presenters.print_json(console, payload)
            return
        console.print(presenters.job_details_table(job))
        console.print(presenters.attempts_table(attempts) if attempts else "No attempts yet.")
        if measured:
            console.print(presenters.streaming_table(measured[-1]))
