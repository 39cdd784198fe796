"""What one run of a job finds out as it goes; saved on its attempt row however the run ends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from upload_jobs.media.streaming import StreamingPath


@dataclass
class AttemptReport:
    """Sizes, optimization outcome and seconds per step of one attempt, filled in step by step."""

    preset: str | None = None
    source_size_bytes: int | None = None
    uploaded_size_bytes: int | None = None
    optimized: bool = False
    fallback_reason: str | None = None
    optimization_path: str | None = None
    optimization_path_reason: str | None = None
    cdn_purge: str | None = None
    cdn_purge_detail: str | None = None
    step_seconds: dict[str, float] = field(default_factory=dict)

    def record_choice(self, path: StreamingPath, reason: str | None) -> None:
        """How the upload was made stream-ready, and why (a fallback's reason is its failure)."""
        self.optimized = path.streams
        self.optimization_path, self.optimization_path_reason = path, reason
        self.fallback_reason = reason if path is StreamingPath.FALLBACK_ORIGINAL else None

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
