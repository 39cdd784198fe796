"""Medians, ratios and targets per workload; the printed table, results.json and RESULTS.md."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.resume import ResumeResult
from bench.runs import BASELINE, PROJECT, RunResult
from bench.slopes import slope_cells, slope_table, slopes
from bench.summaries import IO_PLACES, MAX_PARTS_SENT_TWICE, MB, WorkloadSummary


def _traced(summaries: list[WorkloadSummary]) -> list[WorkloadSummary]:
    """One summary per traced workload (its sizes share the one traced run)."""
    return list({s.workload: s for s in summaries if s.io_per_job_a or s.io_per_job_b}.values())


def io_table(summaries: list[WorkloadSummary]) -> Table | None:
    """Bytes per job read from the sources and written to and read from the work dir, as a
    multiple of the file's size (given in MB); None when no run was traced."""
    traced = _traced(summaries)
    if not traced:
        return None
    table = Table(title="I/O per job, times the file's size; one run of each under strace")
    table.add_column("workload")
    table.add_column("file", justify="right")
    for side in (PROJECT, BASELINE):
        for place in IO_PLACES:
            table.add_column(f"{side}: {place}", justify="right")
    for s in traced:
        table.add_row(*_io_cells(s))
    return table


def _io_cells(s: WorkloadSummary) -> list[str]:
    cells = [s.workload, f"{s.source_bytes_per_job / MB:.0f} MB"]
    for per_job in (s.io_per_job_a, s.io_per_job_b):
        for place in IO_PLACES:
            value = per_job.get(place)
            cells.append("-" if value is None else f"{value / s.source_bytes_per_job:.2f}x")
    return cells


def results_table(summaries: list[WorkloadSummary]) -> Table:
    """The summary as a terminal table."""
    table = Table(
        title="upload-jobs sweep (A) against raw ffmpeg + boto3 (B) and rclone (C), medians",
        caption="; ".join(dict.fromkeys(f"{s.workload}: {s.summary}" for s in summaries)),
    )
    headers = RESULT_HEADERS
    for header in headers:
        table.add_column(header, justify="left" if header in ("workload", "target") else "right")
    for s in summaries:
        table.add_row(*_row(s), f"{s.target}: {'met' if s.target_met else 'NOT met'}")
    return table


RESULT_HEADERS = ["workload", "jobs", "A s", "B s", "C s", "A/B", "overhead/job", "peak RSS A",
                  "peak RSS B", "peak RSS C", "target"]  # fmt: skip


def _row(s: WorkloadSummary) -> list[str]:
    c_seconds = "-" if s.median_c_seconds is None else f"{s.median_c_seconds:.2f}"
    c_peak = "-" if s.peak_rss_c_mb is None else f"{s.peak_rss_c_mb:.0f} MB"
    return [
        s.workload,
        str(s.jobs),
        f"{s.median_a_seconds:.2f}",
        f"{s.median_b_seconds:.2f}",
        c_seconds,
        f"{s.ratio:.2f}",
        f"{s.overhead_per_job_seconds * 1000:.0f} ms",
        f"{s.peak_rss_a_mb:.0f} MB",
        f"{s.peak_rss_b_mb:.0f} MB",
        c_peak,
    ]


def machine_info(ffmpeg: str, prefect_database: str) -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read_lines("/proc/cpuinfo")
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    memory = next(
        (line.split()[1] for line in _read_lines("/proc/meminfo") if line.startswith("MemTotal")),
        None,
    )
    ffmpeg_version = subprocess.run(
        [ffmpeg, "-version"], capture_output=True, text=True, check=False
    ).stdout.split("\n", 1)[0]
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(int(memory) / 1024 / 1024, 1) if memory else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "ffmpeg": ffmpeg_version,
        "prefect": version("prefect"),
        "boto3": version("boto3"),
        "moto": version("moto"),
        "prefect_server_database": prefect_database,
    }


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def write_results(
    directory: Path,
    summaries: list[WorkloadSummary],
    results: list[RunResult],
    machine: dict[str, Any],
    settings: dict[str, Any],
    suffix: str = "",
    resumes: list[ResumeResult] | None = None,
) -> tuple[Path, Path]:
    """bench/results.json (everything) and bench/RESULTS.md (the table and the machine), their
    names ending in `suffix` (an emulated link's label) when given."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / f"results{suffix}.json"
    markdown_path = directory / f"RESULTS{suffix}.md"
    document = {
        "machine": machine,
        "settings": settings,
        "slopes": [asdict(line) for line in slopes(summaries)],
        "workloads": [asdict(s) for s in summaries],
        "runs": [asdict(r) for r in results],
        "resume": [asdict(r) for r in resumes or []],
    }
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    markdown_path.write_text(_markdown(summaries, machine, settings, resumes or []))
    return json_path, markdown_path


def _markdown(
    summaries: list[WorkloadSummary],
    machine: dict[str, Any],
    settings: dict[str, Any],
    resumes: list[ResumeResult],
) -> str:
    lines = [
        "# Benchmark results",
        "",
        'Written by `uv run python bench/run.py` (see the README\'s "Benchmarks"). A is the '
        "project's sweep (`upload-jobs sweep`, with its Prefect server and job database); B "
        "is a raw ffmpeg + boto3 loop with the same ffmpeg command, transfer settings and "
        "concurrency; C is rclone copying the same sources as they are (the upload alone, no "
        "streaming optimization) with the same concurrency and part size. Wall times are whole "
        "processes, medians of the rounds run A B C A B C ...",
        "",
        f"S3 server: {settings.get('S3 server', 'moto')}; link to it: "
        f"{settings.get('link to the S3 server', 'loopback')}.",
        "",
    ]
    slope_rows = [slope_cells(line, markdown=True) for line in slopes(summaries)]
    lines += _markdown_table(slope_table([]), slope_rows)
    lines += ["", "Each workload at each size:", ""]
    lines += _markdown_table(
        results_table([]),
        [[*_row(s), f"{s.target}: {'met' if s.target_met else '**not met**'}"] for s in summaries],
    )
    lines += ["", "Each run's wall time (s):", ""]
    lines += [f"- {s.workload} x{s.jobs}: A {s.walls_a}, B {s.walls_b}, C {s.walls_c or '-'}"
              for s in summaries]  # fmt: skip
    if io := io_table(summaries):
        lines += ["", f"{io.title}:", ""]
        lines += _markdown_table(io, [_io_cells(s) for s in _traced(summaries)])
    if resumes:
        resume = resume_table(resumes)
        lines += ["", f"{resume.title}:", ""]
        lines += _markdown_table(resume, [_resume_cells(r) for r in resumes])
    lines += ["", "## Machine", ""]
    lines += [f"- {name}: {value}" for name, value in machine.items()]
    lines += ["", "## Settings", ""]
    lines += [f"- {name}: {value}" for name, value in settings.items()]
    return "\n".join(lines) + "\n"


def _markdown_table(table: Table, rows: list[list[str]]) -> list[str]:
    headers = [str(column.header) for column in table.columns]
    aligns = ["---:" if column.justify == "right" else "---" for column in table.columns]
    return [f"| {' | '.join(line)} |" for line in (headers, aligns, *rows)]


def resume_table(resumes: list[ResumeResult]) -> Table:
    """What each side sent of an upload refused from 80 % of its parts on, and what the next
    attempt sent again."""
    table = Table(title="An upload refused from 80 % of its parts on, then the next attempt")
    headers = ["side", "file", "part", "refused from", "1st sent", "2nd sent", "parts twice",
               "2nd took", f"target: <= {MAX_PARTS_SENT_TWICE} twice"]  # fmt: skip
    for header in headers:
        table.add_column(header, justify="left" if header in ("side", "target") else "right")
    for r in resumes:
        table.add_row(*_resume_cells(r))
    return table


def _resume_cells(r: ResumeResult) -> list[str]:
    target = "-"
    if r.variant == PROJECT:
        met = r.parts_sent_twice <= MAX_PARTS_SENT_TWICE
        target = "met" if met else "NOT met"
    return [
        f"{r.variant} {r.workload}",
        f"{r.size_bytes / MB:.0f} MB",
        f"{r.part_bytes / MB:.1f} MB",
        str(r.refused_from_part),
        f"{r.first_attempt_bytes / MB:.0f} MB",
        f"{r.second_attempt_bytes / MB:.0f} MB ({r.resent_share:.0%})",
        str(r.parts_sent_twice),
        f"{r.second_attempt_seconds:.2f} s",
        target,
    ]


def print_summary(
    console: Console, summaries: list[WorkloadSummary], resumes: list[ResumeResult] | None = None
) -> None:
    """The tables, then one line per target not met."""
    console.print(results_table(summaries))
    lines = slopes(summaries)
    console.print(slope_table(lines))
    for line in lines:
        if not line.target_met:
            console.print(f"{line.workload}: target {line.target}")
    if io := io_table(summaries):
        console.print(io)
    if resumes:
        console.print(resume_table(resumes))
    for s in summaries:
        if not s.target_met:
            console.print(f"{s.workload}: target {s.target} not met")
    for r in resumes or []:
        if r.variant == PROJECT and r.parts_sent_twice > MAX_PARTS_SENT_TWICE:
            console.print(f"resume of {r.workload}: {r.parts_sent_twice} parts sent twice")
