"""`upload-jobs reconcile`: make the job table agree with the bucket, and say what changed."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn

from upload_jobs.cli import presenters
from upload_jobs.cli.fitted_table import Column, FittedTable
from upload_jobs.cli.output import (
    EXIT_FAILED,
    JsonOption,
    console,
    err_console,
    friendly_errors,
)
from upload_jobs.jobs.reconcile import ReconcileReport, ReconcileScope, reconcile_jobs
from upload_jobs.settings import get_settings
from upload_jobs.storage import spaces


def reconcile(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change, change nothing.")
    ] = False,
    scope: Annotated[
        ReconcileScope,
        typer.Option(
            help="all: failed, stuck and completed jobs; unfinished: only failed and stuck ones."
        ),
    ] = ReconcileScope.ALL,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Check at most this many jobs (oldest first).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Compare the job table with the bucket and fix the statuses that disagree.

    Failed or stuck jobs whose object is stored (same size and sha256) become completed;
    completed jobs whose object is missing are set back to failed for the next sweep.
    Exit code 0 when every job could be checked, 1 otherwise.
    """
    with friendly_errors(json_output):
        from tasks.credentials_block import read_blocks_from_prefect

        read_blocks_from_prefect()
        settings = get_settings()
        client = spaces.make_s3_client(settings)
        # A missing bucket answers 404 for every key: every completed job would look lost.
        spaces.check_bucket_access(client, settings.bucket)
        with Progress(
            SpinnerColumn(),
            TextColumn("Checking jobs against the bucket: {task.completed} checked"),
            console=err_console,
            transient=True,
            disable=json_output,
        ) as progress:
            checking = progress.add_task("reconcile", total=None)
            report = reconcile_jobs(
                settings.database_url,
                client,
                settings.bucket,
                partial(spaces.public_url, settings),
                scope=scope,
                dry_run=dry_run,
                limit=limit,
                on_checked=lambda checked: progress.update(checking, completed=checked),
            )
        problems = _problems(report)
        if json_output:
            payload = dataclasses.asdict(report) | {"in_agreement": report.in_agreement}
            presenters.print_json(console, payload | ({"error": problems} if problems else {}))
        else:
            _print_report(report)
            if problems:
                err_console.print(f"[red]Error:[/red] {escape(problems)}", highlight=False)
        if problems:
            raise typer.Exit(EXIT_FAILED)


def _problems(report: ReconcileReport) -> str:
    """What is left for people to sort out, in a sentence or two; empty when nothing is."""
    problems = []
    if report.conflicts:
        jobs = ", ".join(str(conflict.job_id) for conflict in report.conflicts)
        whose = (
            f"The key of job {jobs} holds an object that is not its own"
            if len(report.conflicts) == 1
            else f"The keys of jobs {jobs} hold objects that are not theirs"
        )
        problems.append(
            f"{whose}: nothing was changed and nothing will be uploaded over them. Give the job "
            "another key (`upload-jobs set-key ID KEY`) or move the object away, then retry."
        )
    if report.undecided:
        problems.append(
            f"{len(report.undecided)} jobs could not be checked (the bucket did not answer for "
            "them); run reconcile again later."
        )
    return " ".join(problems)


def _print_report(report: ReconcileReport) -> None:
    if report.changes:
        table = FittedTable(
            [
                Column("JOB", justify="right"),
                Column("OBJECT KEY", shrinkable=True, min_width=12),
                Column("WAS"),
                Column("NOW"),
                Column("WHY", shrinkable=True, min_width=12),
            ],
            title="Jobs whose status disagreed with the bucket",
        )
        for change in report.changes:
            table.add_row(
                str(change.job_id),
                change.object_key,
                change.previous_status,
                change.new_status,
                change.reason,
            )
        console.print(table)
    if report.conflicts:
        conflicts = FittedTable(
            [
                Column("JOB", justify="right"),
                Column("OBJECT KEY", shrinkable=True, min_width=12),
                Column("STATUS"),
                Column("HELD BY", shrinkable=True, min_width=12),
            ],
            title="Jobs whose key holds an object not theirs (left alone)",
        )
        for conflict in report.conflicts:
            conflicts.add_row(
                str(conflict.job_id), conflict.object_key, conflict.status, conflict.held_by
            )
        console.print(conflicts)
    for job_id, reason in report.undecided.items():
        err_console.print(f"[yellow]Job {job_id} not checked:[/yellow] {escape(reason)}")
    console.print(report.summary(), highlight=False, soft_wrap=True)
    if report.dry_run and report.changes:
        console.print("Dry run: nothing was changed. Run without --dry-run to apply.")
