"""Each workload's medians per number of jobs, per side, and its targets."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.runs import BASELINE, PROJECT, RCLONE, RunResult
from bench.workloads import WORKLOADS

MB = 1_000_000
# The targets (issues 6, 17, 28): A/B of the one-job workload, the uploading process's peak RSS,
# the seconds per job (the slope, A against B), and how often A reads each source.
RATIO_TARGETS = {"W3": 1.0}
PEAK_RSS_TARGET_MB = 250
SLOPE_RATIO_TARGETS = {"W1": 1.0, "W2": 1.2, "W3": 1.0}
SOURCE_READ_TARGETS = {"W1": 2.0, "W3": 2.0}
# The I/O columns, from one traced run of each side (bench/io_audit.py).
IO_PLACES = ("source read", "work dir written", "work dir read")
MAX_PARTS_SENT_TWICE = 1  # by a resumed upload


SIDES = (PROJECT, BASELINE, RCLONE)


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
    # C, rclone copying the sources as they are: None where rclone was not run.
    median_c_seconds: float | None = None
    peak_rss_c_mb: float | None = None
    walls_c: list[float] | None = None


def summarize(
    results: list[RunResult], traced: list[RunResult] | None = None
) -> list[WorkloadSummary]:
    """One summary per workload and number of jobs, in the order they were run; `traced`: the
    uncounted runs under strace that give the I/O columns (of a workload's first size)."""
    summaries = []
    for name, jobs in dict.fromkeys((result.workload, result.jobs) for result in results):
        runs = [result for result in results if (result.workload, result.jobs) == (name, jobs)]
        io = {r.variant: r for r in traced or [] if r.workload == name}
        walls = {side: [r.wall_seconds for r in runs if r.variant == side] for side in SIDES}
        peaks = {side: [r.peak_rss_bytes / MB for r in runs if r.variant == side] for side in SIDES}
        median_a, median_b = statistics.median(walls[PROJECT]), statistics.median(walls[BASELINE])
        ratio = median_a / median_b
        target, met = _target(name, ratio, max(peaks[PROJECT]), io.get(PROJECT))
        summaries.append(
            WorkloadSummary(
                name,
                WORKLOADS[name].summary,
                jobs,
                len(walls[PROJECT]),
                median_a,
                median_b,
                ratio,
                (median_a - median_b) / jobs,
                max(peaks[PROJECT]),
                max(peaks[BASELINE]),
                target,
                met,
                [round(w, 3) for w in walls[PROJECT]],
                [round(w, 3) for w in walls[BASELINE]],
                _per_job(io.get(PROJECT)),
                _per_job(io.get(BASELINE)),
                max(r.uploaded_bytes / r.jobs for r in [*runs, *io.values()]),
                statistics.median(walls[RCLONE]) if walls[RCLONE] else None,
                max(peaks[RCLONE]) if peaks[RCLONE] else None,
                [round(w, 3) for w in walls[RCLONE]] if walls[RCLONE] else None,
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
    targets.append((f"peak RSS A <= {PEAK_RSS_TARGET_MB} MB", peak_rss_mb <= PEAK_RSS_TARGET_MB))
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
