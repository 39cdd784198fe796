"""What one run of a job finds out as it goes; saved on its attempt row however the run ends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from upload_jobs.jobs.measurement import UploadMeasurement
from upload_jobs.media.renditions import RenditionSummary
from upload_jobs.media.startup import StartupCost
from upload_jobs.media.streaming import DeclinedLevel, StreamingPath


@dataclass
class AttemptReport:
    """Sizes, optimization outcome and seconds per step of one attempt, filled in step by step."""

    preset: str | None = None
    source_size_bytes: int | None = None
    uploaded_size_bytes: int | None = None
    optimized: bool = False
    fallback_reason: str | None = None
    fallback_kind: str | None = None
    optimization_path: str | None = None
    optimization_path_reason: str | None = None
    cdn_purge: str | None = None
    cdn_purge_detail: str | None = None
    # What a player fetches before the first frame, of the source and of what went up.
    source_startup: StartupCost | None = None
    uploaded_startup: StartupCost | None = None
    step_seconds: dict[str, float] = field(default_factory=dict)
    renditions: tuple[RenditionSummary, ...] = ()
    declined: tuple[DeclinedLevel, ...] = ()
    uploaded_object_count: int | None = None

    def record_choice(
        self, path: StreamingPath, reason: str | None, fallback_kind: str | None = None
    ) -> None:
        """How the upload was made stream-ready, and why (a fallback's reason is its failure)."""
        self.optimized = path.streams
        self.optimization_path, self.optimization_path_reason = path, reason
        fell_back = path is StreamingPath.FALLBACK_ORIGINAL
        self.fallback_reason = reason if fell_back else None
        self.fallback_kind = fallback_kind if fell_back else None

    def record_renditions(
        self, renditions: tuple[RenditionSummary, ...], declined: tuple[DeclinedLevel, ...]
    ) -> None:
        """What went up per rendition, and the preset levels passed over on the way."""
        self.renditions, self.declined = renditions, declined

    def rendition_columns(self) -> dict[str, Any]:
        """The renditions, declined levels and object count as the attempt row's columns."""
        return {
            "renditions": [r.as_json() for r in self.renditions] or None,
            "declined_levels": [asdict(level) for level in self.declined] or None,
            "uploaded_object_count": self.uploaded_object_count,
        }

    def record_measurement(self, measured: UploadMeasurement) -> None:
        """The measure step's findings: the upload's size, the startup costs before and after."""
        self.uploaded_size_bytes = measured.size_bytes
        self.source_startup = measured.source_startup
        self.uploaded_startup = measured.uploaded_startup

    @property
    def remux_seconds(self) -> float | None:
        """How long making the upload stream-ready took (the move, the remux or the failed try)."""
        return self.step_seconds.get("optimize_for_streaming")

    def startup_columns(self) -> dict[str, int | None]:
        """The startup costs as the attempt row's columns (`source_startup_bytes`, ...)."""
        columns: dict[str, int | None] = {}
        for side, cost in (("source", self.source_startup), ("uploaded", self.uploaded_startup)):
            columns[f"{side}_startup_bytes"] = cost.startup_bytes if cost else None
            columns[f"{side}_moov_offset"] = cost.moov_offset if cost else None
            columns[f"{side}_moov_bytes"] = cost.moov_bytes if cost else None
            columns[f"{side}_startup_requests"] = cost.range_requests if cost else None
        return columns

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the block as step `name`; a step that fails is timed too."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.step_seconds[name] = round(time.perf_counter() - started, 3)


@dataclass(frozen=True)
class StoredObject:
    """What the bucket holds for the job once its upload step succeeded."""

    public_url: str
    etag: str
    skipped_existing_object: bool = False
