"""Medians, ratios and targets per workload; the printed table, results.json and RESULTS.md."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.resume import ResumeResult
from bench.runs import BASELINE, PROJECT, RunResult
from bench.workloads import WORKLOADS

MB = 1_000_000
# The targets: A/B per workload, and the uploading process's peak RSS for W3 (issues 6, 17).
RATIO_TARGETS = {"W1": 1.0, "W2": 1.5, "W3": 1.0}
PEAK_RSS_TARGETS_MB = {"W3": 250}
# The I/O columns, from one traced run of each side (bench/io_audit.py).
IO_PLACES = ("source read", "work dir written", "work dir read")
MAX_PARTS_SENT_TWICE = 1  # by a resumed upload


@dataclass(frozen=True)
class WorkloadSummary:
    """One workload's medians over the rounds, and whether it met its target."""

    workload: str
    summary: str
    jobs: int
    rounds: int
    median_a_seconds: float
    median_b_seconds: float
    ratio: float
    overhead_per_job_seconds: float
    peak_rss_a_mb: float
    peak_rss_b_mb: float
    target: str
    target_met: bool
    walls_a: list[float]
    walls_b: list[float]
    # Bytes per job by place (IO_PLACES), from the traced runs; empty without strace.
    io_per_job_a: dict[str, float]
    io_per_job_b: dict[str, float]
    source_bytes_per_job: float


def summarize(
    results: list[RunResult], traced: list[RunResult] | None = None
) -> list[WorkloadSummary]:
    """One summary per workload, in the order the workloads were run; `traced`: the uncounted
    runs under strace that give the I/O columns."""
    summaries = []
    for name in dict.fromkeys(result.workload for result in results):
        runs = [result for result in results if result.workload == name]
        io = {r.variant: r for r in traced or [] if r.workload == name}
        walls_a = [r.wall_seconds for r in runs if r.variant == PROJECT]
        walls_b = [r.wall_seconds for r in runs if r.variant == BASELINE]
        median_a, median_b = statistics.median(walls_a), statistics.median(walls_b)
        jobs = runs[0].jobs
        ratio = median_a / median_b
        rss_a = max(r.peak_rss_bytes for r in runs if r.variant == PROJECT) / MB
        rss_b = max(r.peak_rss_bytes for r in runs if r.variant == BASELINE) / MB
        target, met = _target(name, ratio, rss_a, io.get(PROJECT))
        summaries.append(
            WorkloadSummary(
                name,
                WORKLOADS[name].summary,
                jobs,
                len(walls_a),
                median_a,
                median_b,
                ratio,
                (median_a - median_b) / jobs,
                rss_a,
                rss_b,
                target,
                met,
                [round(w, 3) for w in walls_a],
                [round(w, 3) for w in walls_b],
                _per_job(io.get(PROJECT)),
                _per_job(io.get(BASELINE)),
                max(r.uploaded_bytes / r.jobs for r in [*runs, *io.values()]),
            )
        )
    return summaries


def _per_job(run: RunResult | None) -> dict[str, float]:
    if run is None or not run.io_bytes:
        return {}
    return {place: run.io_bytes.get(place, 0) / run.jobs for place in IO_PLACES}


def _target(
    name: str, ratio: float, peak_rss_mb: float, traced_a: RunResult | None
) -> tuple[str, bool]:
    """Every target of the workload, as one text, and whether all were met."""
    targets: list[tuple[str, bool]] = []
    if name in RATIO_TARGETS:
        targets.append((f"A/B <= {RATIO_TARGETS[name]}", ratio <= RATIO_TARGETS[name]))
    if name in PEAK_RSS_TARGETS_MB:
        limit = PEAK_RSS_TARGETS_MB[name]
        targets.append((f"peak RSS A <= {limit} MB", peak_rss_mb <= limit))
    if traced_a is not None and traced_a.io_bytes:
        # Every workload's files only need their moov moved: nothing to write (issue 17).
        written = traced_a.io_bytes.get("work dir written", 0)
        targets.append(("A writes 0 B to the work dir", written == 0))
    if not targets:
        return "-", True
    if len(targets) == 1:
        return targets[0][0], targets[0][1]
    # Several: each says whether it was met; the row's own verdict is all of them.
    text = ", ".join(f"{target} ({'met' if met else 'NOT met'})" for target, met in targets)
    return text, all(met for _, met in targets)


def io_table(summaries: list[WorkloadSummary]) -> Table | None:
    """Bytes per job read from the sources and written to and read from the work dir, as a
    multiple of the file's size (given in MB); None when no run was traced."""
    traced = [s for s in summaries if s.io_per_job_a or s.io_per_job_b]
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
        title="upload-jobs sweep (A) against raw ffmpeg + boto3 (B), medians",
        caption="; ".join(f"{s.workload}: {s.summary}" for s in summaries),
    )
    headers = [
        "workload",
        "jobs",
        "A s",
        "B s",
        "A/B",
        "overhead/job",
        "peak RSS A",
        "peak RSS B",
        "target",
    ]
    for header in headers:
        table.add_column(header, justify="left" if header in ("workload", "target") else "right")
    for s in summaries:
        table.add_row(*_row(s), f"{s.target}: {'met' if s.target_met else 'NOT met'}")
    return table


def _row(s: WorkloadSummary) -> list[str]:
    return [
        s.workload,
        str(s.jobs),
        f"{s.median_a_seconds:.2f}",
        f"{s.median_b_seconds:.2f}",
        f"{s.ratio:.2f}",
        f"{s.overhead_per_job_seconds * 1000:.0f} ms",
        f"{s.peak_rss_a_mb:.0f} MB",
        f"{s.peak_rss_b_mb:.0f} MB",
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
        "concurrency. Wall times are whole processes, medians of the rounds run A B A B ...",
        "",
        f"Link to the S3 server: {settings.get('link to the S3 server', 'loopback')}.",
        "",
        "| workload | jobs | A (s) | B (s) | A/B | overhead per job | peak RSS A | "
        "peak RSS B | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in summaries:
        met = "met" if s.target_met else "**not met**"
        lines.append("| " + " | ".join([*_row(s), f"{s.target}: {met}"]) + " |")
    lines += ["", "Each run's wall time (s):", ""]
    lines += [f"- {s.workload}: A {s.walls_a}, B {s.walls_b}" for s in summaries]
    if io := io_table(summaries):
        lines += ["", f"{io.title}:", ""]
        lines += _markdown_table(io, [_io_cells(s) for s in summaries])
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
