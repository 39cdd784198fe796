"""`upload-jobs db upgrade`: the job table's schema, and the shared keys it can sort out."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from upload_jobs.cli import presenters
from upload_jobs.cli.output import JsonOption, console, friendly_errors
from upload_jobs.jobs.database import redacted_url
from upload_jobs.settings import get_settings


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
