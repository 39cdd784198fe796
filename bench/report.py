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

from bench.runs import BASELINE, PROJECT, RunResult
from bench.workloads import WORKLOADS

MB = 1_000_000
# The targets: A/B for W1 and W2, the uploading process's peak RSS for W3.
RATIO_TARGETS = {"W1": 1.05, "W2": 1.5}
PEAK_RSS_TARGETS_MB = {"W3": 250}


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


def summarize(results: list[RunResult]) -> list[WorkloadSummary]:
    """One summary per workload, in the order the workloads were run."""
    summaries = []
    for name in dict.fromkeys(result.workload for result in results):
        runs = [result for result in results if result.workload == name]
        walls_a = [r.wall_seconds for r in runs if r.variant == PROJECT]
        walls_b = [r.wall_seconds for r in runs if r.variant == BASELINE]
        median_a, median_b = statistics.median(walls_a), statistics.median(walls_b)
        jobs = runs[0].jobs
        ratio = median_a / median_b
        rss_a = max(r.peak_rss_bytes for r in runs if r.variant == PROJECT) / MB
        rss_b = max(r.peak_rss_bytes for r in runs if r.variant == BASELINE) / MB
        target, met = _target(name, ratio, rss_a)
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
            )
        )
    return summaries


def _target(name: str, ratio: float, peak_rss_mb: float) -> tuple[str, bool]:
    if name in RATIO_TARGETS:
        return f"A/B <= {RATIO_TARGETS[name]}", ratio <= RATIO_TARGETS[name]
    if name in PEAK_RSS_TARGETS_MB:
        limit = PEAK_RSS_TARGETS_MB[name]
        return f"peak RSS A <= {limit} MB", peak_rss_mb <= limit
    return "-", True


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
    }
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    markdown_path.write_text(_markdown(summaries, machine, settings))
    return json_path, markdown_path


def _markdown(
    summaries: list[WorkloadSummary], machine: dict[str, Any], settings: dict[str, Any]
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
    lines += ["", "## Machine", ""]
    lines += [f"- {name}: {value}" for name, value in machine.items()]
    lines += ["", "## Settings", ""]
    lines += [f"- {name}: {value}" for name, value in settings.items()]
    return "\n".join(lines) + "\n"


def print_summary(console: Console, summaries: list[WorkloadSummary]) -> None:
    """The table, then one line per workload whose target was not met."""
    console.print(results_table(summaries))
    for s in summaries:
        if not s.target_met:
            console.print(f"{s.workload}: target {s.target} not met")
