"""`upload-jobs serve` and `setup`: running the flows the Prefect way, from this machine."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer
from rich.markup import escape

from upload_jobs.cli import presenters
from upload_jobs.cli.output import JsonOption, console, err_console, friendly_errors
from upload_jobs.jobs.sweeping import SweepMode


def flow_parameters(**options: Any) -> dict[str, Any]:
    """The options given on the command line, as flow parameters; the flow's own defaults stay
    the one source of the others."""
    return {name: value for name, value in options.items() if value is not None}


def serve(
    sweep_cron: Annotated[
        str | None,
        typer.Option(
            help="When scheduled sweeps run (default: UPLOAD_JOBS_SWEEP_CRON, else every "
            "15 minutes)."
        ),
    ] = None,
    sweep_mode: Annotated[
        SweepMode | None, typer.Option(help="Mode of scheduled sweeps (default: local).")
    ] = None,
    sweep_limit: Annotated[
        int | None, typer.Option(min=1, help="Jobs per scheduled sweep (default: 50).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Flow runs at once in this process (default: 5).")
    ] = None,
    poll_seconds: Annotated[
        float | None,
        typer.Option(min=1, help="How often to ask the server for runs to start (default: 10 s)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Serve retry-upload-job/on-demand and the scheduled sweep from this process until Ctrl-C."""
    with friendly_errors(json_output):
        from deployments.serve import SERVE_NEEDS, build_deployments, describe, serve_deployments
        from deployments.server import prefect_ui_url, require_prefect_server

        api_url = require_prefect_server(*SERVE_NEEDS)
        deployments = build_deployments(
            sweep_cron, flow_parameters(mode=sweep_mode, limit=sweep_limit)
        )
        rows = describe(deployments)
        ui_url = f"{prefect_ui_url()}/deployments"
        if json_output:
            presenters.print_json(console, {"api": api_url, "ui": ui_url, "deployments": rows})
        else:
            # Two columns fit 80: the parameters, when a deployment has its own, go below.
            shown = [{"deployment": row["deployment"], "runs": row["runs"]} for row in rows]
            console.print(presenters.rows_table(f"Serving on {api_url}", shown))
            for row in rows:
                if row["parameters"] != "flow defaults":
                    console.print(f"{row['deployment']} parameters: {escape(row['parameters'])}",
                                  highlight=False, soft_wrap=True)  # fmt: skip
            console.print(
                f"Run them from the Prefect UI at {ui_url}, with "
                "`prefect deployment run 'retry-upload-job/on-demand' -p job_id=ID` or "
                "`upload-jobs retry ID --via-deployment`. Ctrl-C stops serving.",
                highlight=False,
            )
        serve_deployments(deployments, limit=limit, poll_seconds=poll_seconds, say=_say)
        err_console.print("Stopped serving.", highlight=False)


def _say(sentence: str) -> None:
    """What serving tells the person running it, on stderr (stdout may carry --json)."""
    err_console.print(escape(sentence), highlight=False, soft_wrap=True)


def setup(
    ffmpeg_slots: Annotated[
        int, typer.Option(min=1, help="Remuxes at once across all workers (CPU and disk).")
    ] = 2,
    upload_slots: Annotated[
        int,
        typer.Option(min=1, help="Uploads at once across all workers (Spaces request rate)."),
    ] = 4,
    credentials_block: Annotated[
        str | None,
        typer.Option(
            help="Also save this environment's Spaces key (AWS_ACCESS_KEY_ID, ...) with "
            "UPLOAD_JOBS_REGION and UPLOAD_JOBS_ENDPOINT_URL as this AwsCredentials block.",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Create the video-uploads work pool and the ffmpeg/upload slot limits on the Prefect server.

    Safe to run again: what exists is kept, limits are set to the numbers given.
    """
    with friendly_errors(json_output):
        from deployments.setup import set_up_prefect

        made = set_up_prefect(ffmpeg_slots, upload_slots, credentials_block)
        resources = [dataclasses.asdict(r) for r in made]
        if json_output:
            presenters.print_json(console, resources)
            return
        console.print(presenters.rows_table("Prefect server setup", resources))
        if credentials_block:
            console.print(
                f"Workers read the key from the block with "
                f"UPLOAD_JOBS_AWS_CREDENTIALS_BLOCK={credentials_block}; they need no AWS_* "
                "variables then.",
                highlight=False,
            )
