"""What the streaming optimization bought across jobs: paths taken, fallbacks by kind, startup
bytes before and after (`upload-jobs stats`, the jobs page's panel and `/api/stats`)."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import PurePath
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from upload_jobs.byte_sizes import format_bytes
from upload_jobs.jobs.database import session_for
from upload_jobs.jobs.models import AttemptOutcome, JobStatus, UploadAttempt, UploadJob
from upload_jobs.jobs.rendition_stats import RenditionStats, rendition_stats
from upload_jobs.media.optimization import StreamingPath
from upload_jobs.media.startup import StartupCost, describe_startup

# Startup bytes fall into bins four times wider than the last: KBs for a faststart file, up to
# the whole file for moov at the end.
_KIB = 1024
HISTOGRAM_EDGES = [64 * _KIB * 4**power for power in range(7)]  # 64 KB ... 256 MB
# The paths on which the optimization changed what went up (already-ready files went as they were).
CHANGED_PATHS = frozenset(
    path.value for path in StreamingPath if path.streams and path is not StreamingPath.ALREADY_READY
)


@dataclass(frozen=True)
class JobStartup:
    """One completed job's startup cost before and after, from its completing attempt."""

    job_id: int
    file_name: str
    optimization_path: str | None
    reason: str | None
    fallback_kind: str | None
    source_startup_bytes: int | None
    uploaded_startup_bytes: int | None
    source_startup_requests: int | None
    uploaded_startup_requests: int | None
    remux_seconds: float | None
    renditions: tuple[dict[str, Any], ...] = ()

    @property
    def measured(self) -> bool:
        """Whether both startup costs are known (attempts before migration 0007 have none)."""
        return self.source_startup_bytes is not None and self.uploaded_startup_bytes is not None

    @property
    def saved_bytes(self) -> int:
        """Startup bytes the optimization saved a viewer (0 when unmeasured)."""
        if self.source_startup_bytes is None or self.uploaded_startup_bytes is None:
            return 0
        return self.source_startup_bytes - self.uploaded_startup_bytes

    @classmethod
    def of(cls, job: UploadJob, attempt: UploadAttempt) -> JobStartup:
        """The figures `attempt` recorded for `job`."""
        return cls(
            job_id=job.id or 0,
            file_name=PurePath(job.source_path).name,
            optimization_path=attempt.optimization_path,
            reason=attempt.streaming_reason,
            fallback_kind=attempt.fallback_kind,
            source_startup_bytes=attempt.source_startup_bytes,
            uploaded_startup_bytes=attempt.uploaded_startup_bytes,
            source_startup_requests=attempt.source_startup_requests,
            uploaded_startup_requests=attempt.uploaded_startup_requests,
            remux_seconds=attempt.remux_seconds,
            renditions=tuple(attempt.renditions or ()),
        )


@dataclass(frozen=True)
class HistogramBin:
    """Jobs whose startup bytes lie in [low, high): before (the source) and after (uploaded)."""

    label: str
    low: int
    high: int | None
    before: int
    after: int


@dataclass(frozen=True)
class FallbackCount:
    """Jobs whose original went up for one kind of failure, with the newest one's words."""

    kind: str
    jobs: int
    example: str | None


@dataclass(frozen=True)
class StreamingStats:
    """The summary: how jobs were made stream-ready and what viewers are spared."""

    completed_jobs: int
    measured_jobs: int
    optimized_jobs: int
    paths: dict[str, int]
    fallbacks: list[FallbackCount]
    startup_bytes_before: int
    startup_bytes_after: int
    startup_bytes_saved: int
    median_saved_per_job: int | None
    median_before: int | None
    median_after: int | None
    median_remux_seconds: float | None
    histogram: list[HistogramBin] = field(default_factory=list)
    renditions: list[RenditionStats] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, as `upload-jobs stats --json` and `/api/stats` give it."""
        return asdict(self)

    def summary_rows(self) -> list[dict[str, str]]:
        """The headline figures as (what, value) rows for a table."""
        saved = format_bytes(self.startup_bytes_saved)
        rows = [
            ("completed jobs", str(self.completed_jobs)),
            ("optimized for streaming", str(self.optimized_jobs)),
            ("startup measured", str(self.measured_jobs)),
            ("startup bytes saved in total", saved),
            ("startup bytes saved per job (median)", _optional_bytes(self.median_saved_per_job)),
            ("startup per job before → after (median)", self.median_change()),
            ("optimize step (median)", _optional_seconds(self.median_remux_seconds)),
        ]
        return [{"what": what, "value": value} for what, value in rows]

    def median_change(self) -> str:
        """`6.10 MB → 41.3 KB`, the median job's startup before and after."""
        if self.median_before is None or self.median_after is None:
            return "-"
        return f"{format_bytes(self.median_before)} → {format_bytes(self.median_after)}"


def startup_lines(startups: list[JobStartup]) -> list[str]:
    """A markdown line per job (startup before → after, path) and one for the total."""
    lines = []
    for job in startups:
        change = describe_startup(_cost(job, "source"), _cost(job, "uploaded"))
        name = job.file_name.replace("`", "'")  # a file name cannot close the code span
        lines.append(f"- job {job.job_id} `{name}`: {change}; {job.optimization_path}")
    summary = streaming_stats(startups)
    if summary.measured_jobs:
        lines.append(
            f"- **total**, {summary.measured_jobs} jobs: "
            f"{format_bytes(summary.startup_bytes_before)} → "
            f"{format_bytes(summary.startup_bytes_after)} before the first frame "
            f"({format_bytes(summary.startup_bytes_saved)} saved)"
        )
    return lines


def _cost(job: JobStartup, side: str) -> StartupCost | None:
    startup_bytes = getattr(job, f"{side}_startup_bytes")
    requests = getattr(job, f"{side}_startup_requests")
    if startup_bytes is None or requests is None:
        return None
    return StartupCost(startup_bytes, 0, 0, requests)  # where moov lies is not shown here


def completed_startups(database_url: str, job_ids: Iterable[int] | None = None) -> list[JobStartup]:
    """Each completed job's figures from its newest completed attempt (only `job_ids` if given)."""
    newest = select(
        UploadAttempt.job_id, func.max(UploadAttempt.attempt_number).label("number")
    ).where(col(UploadAttempt.outcome) == AttemptOutcome.COMPLETED)
    if job_ids is not None:
        newest = newest.where(col(UploadAttempt.job_id).in_(list(job_ids)))
    latest = newest.group_by(col(UploadAttempt.job_id)).subquery()
    query = (
        select(UploadJob, UploadAttempt)
        .join(latest, col(UploadAttempt.job_id) == latest.c.job_id)
        .where(col(UploadAttempt.attempt_number) == latest.c.number)
        .where(col(UploadJob.id) == col(UploadAttempt.job_id))
        .where(col(UploadJob.status) == JobStatus.COMPLETED)
        .order_by(col(UploadJob.id))
    )
    with session_for(database_url) as session:
        return [JobStartup.of(job, attempt) for job, attempt in session.exec(query).all()]


def streaming_stats(startups: list[JobStartup]) -> StreamingStats:
    """The summary of these jobs' figures."""
    measured = [s for s in startups if s.measured]
    before = [s.source_startup_bytes or 0 for s in measured]
    after = [s.uploaded_startup_bytes or 0 for s in measured]
    paths = Counter(s.optimization_path or "unrecorded" for s in startups)
    remuxes = [
        s.remux_seconds
        for s in startups
        if s.remux_seconds is not None
        and s.optimization_path in ("moved_in_process", "ffmpeg_remux")
    ]
    return StreamingStats(
        completed_jobs=len(startups),
        measured_jobs=len(measured),
        optimized_jobs=sum(n for path, n in paths.items() if path in CHANGED_PATHS),
        paths=dict(paths.most_common()),
        fallbacks=_fallbacks(startups),
        startup_bytes_before=sum(before),
        startup_bytes_after=sum(after),
        startup_bytes_saved=sum(s.saved_bytes for s in measured),
        median_saved_per_job=_median([s.saved_bytes for s in measured]),
        median_before=_median(before),
        median_after=_median(after),
        median_remux_seconds=round(statistics.median(remuxes), 3) if remuxes else None,
        histogram=_histogram(before, after),
        renditions=rendition_stats(list(s.renditions) for s in startups),
    )


def _fallbacks(startups: list[JobStartup]) -> list[FallbackCount]:
    fell_back = [s for s in startups if s.optimization_path == "fallback_original"]
    kinds = Counter(s.fallback_kind or "unrecorded" for s in fell_back)
    newest = {s.fallback_kind or "unrecorded": s.reason for s in fell_back}
    return [FallbackCount(kind, jobs, newest[kind]) for kind, jobs in kinds.most_common()]


def _histogram(before: list[int], after: list[int]) -> list[HistogramBin]:
    if not before:
        return []
    lows = [0, *HISTOGRAM_EDGES]
    highs: list[int | None] = [*HISTOGRAM_EDGES, None]
    bins = []
    for low, high in zip(lows, highs, strict=True):

        def inside(value: int, low: int = low, high: int | None = high) -> bool:
            return low <= value and (high is None or value < high)

        counts = sum(map(inside, before)), sum(map(inside, after))
        bins.append(HistogramBin(_bin_label(low, high), low, high, *counts))
    # Empty bins at either end say nothing; the ones between keep the scale honest.
    filled = [i for i, b in enumerate(bins) if b.before or b.after]
    return bins[filled[0] : filled[-1] + 1]


def _bin_label(low: int, high: int | None) -> str:
    if high is None:
        return f"≥ {_edge(low)}"
    if low == 0:
        return f"< {_edge(high)}"
    return f"{_edge(low)} to {_edge(high)}"


def _edge(size_bytes: int) -> str:
    """A bin edge, a power of two: `64 KB`, `4 MB`."""
    if size_bytes < _KIB * _KIB:
        return f"{size_bytes // _KIB} KB"
    return f"{size_bytes // (_KIB * _KIB)} MB"


def _median(values: list[int]) -> int | None:
    return int(statistics.median(values)) if values else None


def _optional_bytes(value: int | None) -> str:
    return "-" if value is None else format_bytes(value)


def _optional_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def recorded_startup(attempt: UploadAttempt, side: str) -> StartupCost | None:
    """The startup cost an attempt recorded for `side` ("source" or "uploaded"), if it did."""
    values = [
        getattr(attempt, f"{side}_{name}")
        for name in ("startup_bytes", "moov_offset", "moov_bytes", "startup_requests")
    ]
    return None if None in values else StartupCost(*values)
