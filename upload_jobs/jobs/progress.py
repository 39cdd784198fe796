"""Progress lines for long steps, throttled so a 1 GB upload does not flood the logs."""

from __future__ import annotations

import time
from collections.abc import Callable

from upload_jobs.jobs.files import format_megabytes


class ProgressReport:
    """Reports `label: N%` at most every `min_seconds`, or at each `min_step` percent, and 100."""

    def __init__(
        self,
        report: Callable[[str], object],
        label: str,
        *,
        total_bytes: int | None = None,
        min_seconds: float = 5.0,
        min_step: float = 25.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._report = report
        self._label = label
        self._total_bytes = total_bytes
        self._min_seconds = min_seconds
        self._min_step = min_step
        self._clock = clock
        self._last_time = clock()
        self._last_percent = 0.0

    def percent(self, percent: float) -> None:
        """Record progress as a percentage (ffmpeg's `-progress`)."""
        self._maybe_report(percent, f"{self._label}: {percent:.0f}%")

    def bytes_done(self, done: int) -> None:
        """Record progress as bytes transferred out of `total_bytes`."""
        total = self._total_bytes or 0
        percent = 100.0 if total <= 0 else min(100.0, done / total * 100)
        text = (
            f"{self._label}: {percent:.0f}% ({format_megabytes(done)} of {format_megabytes(total)})"
        )
        self._maybe_report(percent, text)

    def _maybe_report(self, percent: float, text: str) -> None:
        now = self._clock()
        finished = percent >= 100 > self._last_percent
        stepped = percent - self._last_percent >= self._min_step
        waited = now - self._last_time >= self._min_seconds and percent > self._last_percent
        if finished or stepped or waited:
            self._report(text)
            self._last_time, self._last_percent = now, percent
