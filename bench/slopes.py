"""What a workload's jobs cost each side apart from a run's fixed cost: the slope (seconds per
job) and the intercept (seconds per run) of a line through the medians of two sizes."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table

from bench.runs import BASELINE, PROJECT, RCLONE
from bench.summaries import SLOPE_RATIO_TARGETS, SOURCE_READ_TARGETS, WorkloadSummary


@dataclass(frozen=True)
class SlopeSummary:
    """What a workload's jobs cost each side apart from the run's fixed cost: the seconds per
    job (the slope) and per run (the intercept) of a line through its sizes' medians."""

    workload: str
    sizes: list[int]
    slope_a_s: float
    slope_b_s: float
    slope_c_s: float | None
    slope_ratio: float
    intercept_a_s: float
    intercept_b_s: float
    intercept_c_s: float | None
    # How many times A reads each source (strace), where traced.
    source_read_x: float | None
    # Where the intercept comes from: the workload's own sizes, or another workload's (W3 has
    # one job, so its line goes through that workload's fixed cost).
    intercept_from: str
    target: str
    target_met: bool


def slopes(summaries: list[WorkloadSummary]) -> list[SlopeSummary]:
    """One line per workload; a workload of one size borrows the fixed cost of the first
    workload with two (the cost of starting a run does not depend on the files)."""
    by_workload: dict[str, list[WorkloadSummary]] = {}
    for summary in summaries:
        by_workload.setdefault(summary.workload, []).append(summary)
    fitted: dict[str, tuple[dict[str, float | None], dict[str, float | None]]] = {}
    for name, rows in by_workload.items():
        if len(rows) >= 2:
            fitted[name] = _line(rows[0], rows[-1])
    donor = next(iter(fitted), None)
    lines = []
    for name, rows in by_workload.items():
        if name in fitted:
            slope, intercept = fitted[name]
            source = name
        elif donor is not None:
            intercept = fitted[donor][1]
            slope = {
                side: None if m is None or intercept[side] is None
                else (m - (intercept[side] or 0)) / rows[0].jobs
                for side, m in _medians(rows[0]).items()
            }  # fmt: skip
            source = donor
        else:
            continue
        lines.append(_slope_summary(name, rows, slope, intercept, source))
    return lines


def _medians(row: WorkloadSummary) -> dict[str, float | None]:
    return {PROJECT: row.median_a_seconds, BASELINE: row.median_b_seconds,
            RCLONE: row.median_c_seconds}  # fmt: skip


def _line(
    small: WorkloadSummary, large: WorkloadSummary
) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Slope and intercept per side through the medians of the smallest and largest size."""
    slope: dict[str, float | None] = {}
    intercept: dict[str, float | None] = {}
    for side, low in _medians(small).items():
        high = _medians(large)[side]
        if low is None or high is None:
            slope[side] = intercept[side] = None
            continue
        slope[side] = (high - low) / (large.jobs - small.jobs)
        intercept[side] = low - (slope[side] or 0) * small.jobs
    return slope, intercept


def _slope_summary(
    name: str, rows: list[WorkloadSummary], slope: dict[str, float | None],
    intercept: dict[str, float | None], source: str,
) -> SlopeSummary:  # fmt: skip
    a, b = slope[PROJECT] or 0.0, slope[BASELINE] or 0.0
    ratio = a / b if b > 0 else float("inf")
    traced = next((row for row in rows if row.io_per_job_a), None)
    read_x = (
        traced.io_per_job_a.get("source read", 0) / traced.source_bytes_per_job
        if traced is not None and traced.source_bytes_per_job
        else None
    )
    targets: list[tuple[str, bool]] = []
    if name in SLOPE_RATIO_TARGETS:
        limit = SLOPE_RATIO_TARGETS[name]
        targets.append((f"slope A/B <= {limit}", ratio <= limit))
    if name in SOURCE_READ_TARGETS and read_x is not None:
        limit = SOURCE_READ_TARGETS[name]
        # As shown, to the hundredth: the moov's reads make 2.0004x of a 1 GB file.
        targets.append((f"A reads the source <= {limit}x", round(read_x, 2) <= limit))
    if len(targets) == 1:
        text = targets[0][0]
    else:
        text = ", ".join(f"{t} ({'met' if met else 'NOT met'})" for t, met in targets) or "-"
    return SlopeSummary(
        name, [row.jobs for row in rows], a, b, slope[RCLONE], ratio,
        intercept[PROJECT] or 0.0, intercept[BASELINE] or 0.0, intercept[RCLONE], read_x,
        source, text, all(met for _, met in targets),
    )  # fmt: skip


def slope_table(lines: list[SlopeSummary]) -> Table:
    """Seconds per job and per run, each side, and the targets."""
    table = Table(title="Seconds per job (slope) and per run (intercept), from the medians")
    headers = ["workload", "sizes", "A s/job", "B s/job", "C s/job", "slope A/B", "A fixed s",
               "B fixed s", "C fixed s", "A reads source", "target"]  # fmt: skip
    for header in headers:
        table.add_column(header, justify="left" if header in ("workload", "target") else "right")
    for line in lines:
        table.add_row(*slope_cells(line))
    return table


def slope_cells(line: SlopeSummary, markdown: bool = False) -> list[str]:
    """A slope table row (`markdown`: an unmet target in bold)."""

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    fixed = "" if line.intercept_from == line.workload else f" ({line.intercept_from}'s)"
    unmet = "**not met**" if markdown else "NOT met"
    return [
        line.workload,
        " and ".join(str(size) for size in line.sizes),
        seconds(line.slope_a_s), seconds(line.slope_b_s), seconds(line.slope_c_s),
        f"{line.slope_ratio:.2f}",
        seconds(line.intercept_a_s) + fixed, seconds(line.intercept_b_s) + fixed,
        seconds(line.intercept_c_s) + fixed,
        "-" if line.source_read_x is None else f"{line.source_read_x:.2f}x",
        f"{line.target}: {'met' if line.target_met else unmet}",
    ]  # fmt: skip
