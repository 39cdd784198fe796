"""How jobs and attempts look to people (rich tables) and to scripts (JSON)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from upload_jobs.byte_sizes import format_bytes
from upload_jobs.cli.fitted_table import Column, FittedTable
from upload_jobs.jobs.files import format_megabytes
from upload_jobs.jobs.models import JobStatus, UploadAttempt, UploadJob, as_utc
from upload_jobs.jobs.streaming_stats import recorded_startup
from upload_jobs.jobs.sweeping import SweepReport
from upload_jobs.media.renditions import RenditionSummary, describe_renditions
from upload_jobs.media.startup import StartupCost, describe_startup

STATUS_STYLES = {
    JobStatus.PENDING: "yellow",
    JobStatus.IN_PROGRESS: "cyan",
    JobStatus.COMPLETED: "green",
    JobStatus.FAILED: "red",
}


def _as_dict(row: UploadJob | UploadAttempt) -> dict[str, Any]:
    # Declared field order (a loaded row's own order is whatever the ORM filled in first);
    # timestamps in UTC ISO 8601 even where SQLite hands them back without a zone.
    data = row.model_dump(mode="json")
    ordered: dict[str, Any] = {}
    for name in type(row).model_fields:
        value = getattr(row, name)
        moment = as_utc(value) if isinstance(value, datetime) else None
        ordered[name] = moment.isoformat() if moment else data[name]
    return ordered


def job_as_dict(job: UploadJob) -> dict[str, Any]:
    """A job as JSON-ready data, in the table's column order."""
    return _as_dict(job)


def attempt_as_dict(attempt: UploadAttempt) -> dict[str, Any]:
    """An attempt as JSON-ready data, in the table's column order."""
    return _as_dict(attempt)


def print_json(console: Console, payload: Any) -> None:
    """Machine-readable output: plain JSON on stdout, no colour codes."""
    console.print_json(json.dumps(payload, ensure_ascii=False), highlight=False)


def _size(size: int | None) -> str:
    return format_megabytes(size) if size is not None else "-"


def _status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(JobStatus(status), "white"))


def _file_of(source_path: str) -> str:
    """The file and its folder (`2026-11-23/merged.mp4`): pipelines reuse file names by day."""
    path = Path(source_path)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def jobs_table(jobs: list[UploadJob], title: str = "Upload jobs") -> FittedTable:
    """The jobs list with an OPTIMIZED column, as `upload-jobs list` prints it: one line per job
    at any width (`show` and `--json` keep the full values)."""
    table = FittedTable(
        [
            Column("ID", justify="right"),
            Column("STATUS"),
            Column("OPTIMIZED", justify="center"),
            Column("FILE", shrinkable=True, min_width=10),
            Column("SIZE", justify="right"),
            Column("TRIES", justify="right"),
            Column("RESULT", shrinkable=True, min_width=12),
        ],
        title=title,
    )
    for job in jobs:
        optimized = Text("yes", style="green") if job.optimized_for_streaming else Text("no")
        result = Text(
            (job.public_url if job.status == JobStatus.COMPLETED else job.last_error) or ""
        )
        if job.error_kind and job.status == JobStatus.FAILED:
            result = Text.assemble((job.error_kind, "red"), ": ", result)
        table.add_row(
            str(job.id),
            _status_text(job.status),
            optimized,
            _file_of(job.source_path),
            _size(job.uploaded_size_bytes or job.source_size_bytes),
            str(job.attempts),
            result,
        )
    return table


def job_details_table(job: UploadJob) -> Table:
    """Every field of one job, as `upload-jobs show` prints it."""
    table = Table(title=f"Upload job {job.id}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in job_as_dict(job).items():
        shown = (
            _status_text(value) if name == "status" else Text("" if value is None else str(value))
        )
        table.add_row(name, shown)
    return table


def attempts_table(attempts: list[UploadAttempt]) -> Table:
    """A job's attempt history: outcome, optimization or fallback, timings, error."""
    table = Table(title="Attempts")
    table.add_column("#", justify="right")
    table.add_column("OUTCOME")
    table.add_column("OPTIMIZED", justify="center")
    table.add_column("STARTED (UTC)")
    table.add_column("STEPS (s)", overflow="fold")
    table.add_column("NOTE", overflow="fold", max_width=60)
    for attempt in attempts:
        started = as_utc(attempt.started_at)
        steps = ", ".join(f"{k} {v:.2f}" for k, v in (attempt.step_seconds or {}).items())
        note = attempt.error or (
            f"fallback: {attempt.fallback_reason}" if attempt.fallback_reason else ""
        )
        if attempt.skipped_existing_object:
            note = (note + " " if note else "") + "(object already in bucket, not re-uploaded)"
        table.add_row(
            str(attempt.attempt_number),
            attempt.outcome,
            "yes" if attempt.optimized else "no",
            f"{started:%Y-%m-%d %H:%M:%S}" if started else "",
            steps,
            escape(note),
        )
    return table


def streaming_table(attempt: UploadAttempt) -> Table:
    """How attempt N made its upload stream-ready and what a player fetches before the first
    frame, before and after (`upload-jobs show`)."""
    table = Table(title=f"Streaming (attempt {attempt.attempt_number})", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    before = recorded_startup(attempt, "source")
    after = recorded_startup(attempt, "uploaded")
    path = attempt.optimization_path or "not recorded"
    if attempt.fallback_kind:
        path += f" ({attempt.fallback_kind})"
    why = attempt.streaming_reason
    table.add_row("path", escape(path + (f": {why}" if why else "")))
    table.add_row("startup", describe_startup(before, after))
    if before is not None or after is not None:
        table.add_row("index (moov)", " → ".join(_moov_place(c) for c in (before, after)))
    if attempt.remux_seconds is not None:
        table.add_row("optimize step", f"{attempt.remux_seconds:.2f} s")
    if attempt.renditions:
        renditions = [RenditionSummary.from_json(r) for r in attempt.renditions]
        table.add_row("renditions", escape(describe_renditions(renditions).replace("; ", "\n")))
    for level in attempt.declined_levels or []:
        table.add_row(f"{level.get('preset')} declined", escape(str(level.get("reason"))))
    if (attempt.uploaded_object_count or 0) > 1:
        table.add_row("objects", f"{attempt.uploaded_object_count} (master playlist last)")
    return table


def streaming_as_dict(attempt: UploadAttempt | None) -> dict[str, Any]:
    """The latest optimization for `show --json` (`streaming`): its path, the renditions that
    went up (`width`, `height`, `bitrate`, `psnr`, `ssim`), the levels passed over, startup."""
    if attempt is None:
        return {"path": None, "renditions": [], "declined": [], "object_count": None}
    return {
        "path": attempt.optimization_path,
        "preset": attempt.optimization_preset,
        "reason": attempt.streaming_reason,
        "renditions": attempt.renditions or [],
        "declined": attempt.declined_levels or [],
        "object_count": attempt.uploaded_object_count,
        "startup_bytes": {
            "source": attempt.source_startup_bytes,
            "uploaded": attempt.uploaded_startup_bytes,
        },
    }


def _moov_place(cost: StartupCost | None) -> str:
    if cost is None:
        return "unknown"
    return f"{format_bytes(cost.moov_bytes)} at byte {cost.moov_offset:,}"


def rows_table(
    title: str, rows: Sequence[Mapping[str, object]], right_aligned: Sequence[str] = ()
) -> FittedTable:
    """Plain rows as a table, one column per key (in capitals, `_` as a space), one line per row;
    any column may be shortened in the middle to fit, but those in `right_aligned` (numbers)."""
    names = list(rows[0]) if rows else []
    table = FittedTable(
        [
            Column(
                name.replace("_", " ").upper(),
                justify="right" if name in right_aligned else "left",
                shrinkable=name not in right_aligned,
            )
            for name in names
        ],
        title=title,
    )
    for row in rows:
        table.add_row(*(str(row[name]) for name in names))
    return table


def sweep_table(report: SweepReport) -> FittedTable:
    """What one sweep did, jobs per outcome, as `upload-jobs sweep` prints it."""
    return rows_table(f"Sweep ({report.mode})", report.rows(), right_aligned=["jobs"])
