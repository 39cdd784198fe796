"""`upload-jobs stats`: what the streaming optimization bought, over every completed job."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from upload_jobs.cli import presenters
from upload_jobs.cli.fitted_table import Column, FittedTable
from upload_jobs.cli.jobs import job_store
from upload_jobs.cli.output import JsonOption, console, friendly_errors
from upload_jobs.jobs.streaming_stats import StreamingStats, completed_startups, streaming_stats

BAR_CELLS = 24


def stats(json_output: JsonOption = False) -> None:
    """Jobs optimized, fallbacks by reason, startup bytes saved (total, median), a histogram."""
    with friendly_errors(json_output):
        summary = streaming_stats(completed_startups(job_store().database_url))
        if json_output:
            presenters.print_json(console, summary.as_dict())
            return
        if not summary.completed_jobs:
            console.print("No completed upload jobs yet: nothing to summarize.")
            return
        console.print(presenters.rows_table("Streaming optimization", summary.summary_rows()))
        console.print(paths_table(summary))
        if summary.histogram:
            console.print(histogram_table(summary))
        if summary.renditions:
            console.print(renditions_table(summary))


def renditions_table(summary: StreamingStats) -> FittedTable:
    """Per rendition (HLS rungs, transcodes): jobs, median bitrate, PSNR and SSIM."""
    rows = [
        {
            "rendition": r.rendition,
            "jobs": r.jobs,
            "bitrate": f"{r.median_bitrate / 1e6:.2f} Mbit/s",
            "psnr": "-" if r.median_psnr is None else f"{r.median_psnr:.1f} dB",
            "ssim": "-" if r.median_ssim is None else f"{r.median_ssim:.3f}",
        }
        for r in summary.renditions
    ]
    numbers = ["jobs", "bitrate", "psnr", "ssim"]
    return presenters.rows_table("Renditions (medians)", rows, right_aligned=numbers)


def paths_table(summary: StreamingStats) -> FittedTable:
    """Jobs per way they were made stream-ready, each fallback kind with its newest reason (one
    line each at any width: the reason is shortened in the middle)."""
    table = FittedTable(
        [
            Column("PATH"),
            Column("JOBS", justify="right"),
            Column("NEWEST REASON", shrinkable=True, min_width=12),
        ],
        title="How completed jobs went up",
    )
    for path, jobs in summary.paths.items():
        if path != "fallback_original":
            table.add_row(path, str(jobs), "")
    for fallback in summary.fallbacks:
        table.add_row(f"fallback: {fallback.kind}", str(fallback.jobs), fallback.example or "")
    return table


def histogram_table(summary: StreamingStats) -> Table:
    """Jobs per size of startup (bytes before the first frame): the sources, then the uploads."""
    table = Table(title="Startup bytes per job: source (before) and upload (after)")
    table.add_column("STARTUP", justify="right")
    table.add_column("BEFORE")
    table.add_column("AFTER")
    tallest = max(max(b.before, b.after) for b in summary.histogram)
    for row in summary.histogram:
        table.add_row(
            row.label, _bar(row.before, tallest, "yellow"), _bar(row.after, tallest, "green")
        )
    return table


def _bar(count: int, tallest: int, style: str) -> Text:
    cells = round(BAR_CELLS * count / tallest) if tallest else 0
    if count and not cells:
        cells = 1  # one job still shows
    return Text.assemble(("█" * cells, style), f" {count}" if count else "")
