"""`upload-jobs check-endpoint`: what the configured S3 endpoint does with each request the
product's guarantees rest on, tried under a scratch prefix that is removed afterwards."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from upload_jobs.cli import presenters
from upload_jobs.cli.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    JsonOption,
    console,
    err_console,
    fail,
    friendly_errors,
)
from upload_jobs.errors import UploadJobError
from upload_jobs.jobs.leases import interruption_reason
from upload_jobs.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from upload_jobs.storage.endpoint_probes import ClientVariant, EndpointReport, ProbeResult

# What a result looks like: works in green, refused or ignored in yellow, weaker in red.
_STYLES = {"works": "green", "refused": "yellow", "ignored": "yellow"}


def check_endpoint(json_output: JsonOption = False) -> None:
    """Probe the configured endpoint (UPLOAD_JOBS_ENDPOINT_URL, UPLOAD_JOBS_BUCKET) and say,
    for each guarantee of the product's uploads, whether it holds there.

    Writes only under a scratch prefix of the bucket, and removes it afterwards (on Ctrl-C
    too). Exit code 0 when uploads are safe there, 1 when a guarantee is weaker (the table
    says which), 2 when the endpoint cannot be reached or refuses the credentials.
    """
    with friendly_errors(json_output):
        from tasks.credentials_block import read_blocks_from_prefect
        from upload_jobs.storage.spaces import check_bucket_access, make_s3_client

        read_blocks_from_prefect()
        settings = get_settings()
        client = make_s3_client(settings)
        where = f"{client.meta.endpoint_url}, bucket {settings.bucket}"
        try:
            check_bucket_access(client, settings.bucket)
        except UploadJobError as exc:
            fail(f"{exc}. Nothing was probed at {where}.", EXIT_USAGE, json_output)
        try:
            report = _probe(partial(make_s3_client, settings), client, settings.bucket,
                            settings.acl, json_output)  # fmt: skip
        except UploadJobError as exc:
            fail(f"{exc}. The probes stopped; their scratch objects were removed where the "
                 "endpoint allowed it.", EXIT_USAGE, json_output)  # fmt: skip
        except BaseException as exc:
            if interruption_reason(exc) is None:
                raise
            fail(f"Stopped: {interruption_reason(exc)}. The scratch objects were removed; "
                 f"nothing else at {where} was written.", EXIT_INTERRUPTED,
                 json_output)  # fmt: skip
        if json_output:
            presenters.print_json(console, _as_json(report))
        else:
            _print_report(report)
        if not report.safe:
            raise typer.Exit(EXIT_FAILED)


def _probe(
    variant: ClientVariant, client: S3Client, bucket: str, acl: str, quiet: bool
) -> EndpointReport:
    """Every probe, with a spinner naming the one running; network failures as domain errors."""
    # Imported here: botocore costs ~0.2 s, and `add`, `list` and `show` never need it.
    from upload_jobs.storage.endpoint_probes import probe_endpoint
    from upload_jobs.storage.failures import classified_upload_errors

    with (
        Progress(SpinnerColumn(), TextColumn("Probing: {task.description}"),
                 console=err_console, transient=True, disable=quiet) as progress,
        classified_upload_errors(bucket),
    ):  # fmt: skip
        probing = progress.add_task("connecting", total=None)
        return probe_endpoint(
            client,
            bucket,
            variant,
            acl=acl,
            on_probe=lambda check: progress.update(probing, description=check),
        )


def _style(result: ProbeResult) -> str:
    return "red" if result.weaker else _STYLES[str(result.outcome)]


def _as_json(report: EndpointReport) -> dict[str, object]:
    return {
        "endpoint": report.endpoint,
        "bucket": report.bucket,
        "scratch_prefix": report.prefix,
        "safe": report.safe,
        "weaker": [result.check for result in report.weaker],
        "checks": [dataclasses.asdict(result) for result in report.results],
    }


def _print_report(report: EndpointReport) -> None:
    table = Table(title=f"{report.endpoint}, bucket {report.bucket}", title_justify="left")
    table.add_column("CHECK", no_wrap=True)
    table.add_column("RESULT", no_wrap=True)
    table.add_column("FOR UPLOADS")
    for result in report.results:
        style = _style(result)
        table.add_row(
            escape(result.check),
            f"[{style}]{result.outcome}[/{style}]",
            f"{escape(result.guarantee)} — {escape(result.meaning)}",
        )
    console.print(table)
    if report.safe:
        console.print("Uploads are safe here: every guarantee holds.", highlight=False)
        return
    for result in report.weaker:
        console.print(f"[red]Weaker here:[/red] {escape(result.guarantee)} ({result.check}: "
                      f"{escape(result.seen)}).", highlight=False)  # fmt: skip
