"""Live progress of a running attempt (remux percent, uploaded bytes) for the jobs page and the
Prefect UI, throttled so a long remux costs about one write a second, not one per ffmpeg line."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

logger = logging.getLogger(__name__)

DEFAULT_MIN_SECONDS = 1.0


class Phase(StrEnum):
    """The long steps of a run whose progress people watch."""

    OPTIMIZING = "optimizing"
    UPLOADING = "uploading"


@dataclass(frozen=True)
class ProgressTarget:
    """Which job and attempt a task reports progress for."""

    job_id: int
    attempt_id: int


@dataclass(frozen=True)
class ProgressUpdate:
    """One reading: the phase, its percentage and, while uploading, the bytes sent so far."""

    phase: Phase
    percent: float
    bytes_done: int | None = None
    bytes_total: int | None = None


ProgressSink = Callable[[ProgressUpdate], object]


class ThrottledProgress:
    """Passes readings on to its sinks at most once every `min_seconds`, and always the 100 %.

    A sink that fails (a database hiccup, a Prefect server restart) is logged and skipped:
    progress is a courtesy and must never fail the remux or the upload it describes.
    """

    def __init__(
        self,
        phase: Phase,
        sinks: Sequence[ProgressSink],
        *,
        total_bytes: int | None = None,
        min_seconds: float = DEFAULT_MIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._phase = phase
        self._sinks = list(sinks)
        self._total_bytes = total_bytes
        self._min_seconds = min_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._last_sent: float | None = None
        self._last_percent = -1.0

    def percent(self, percent: float) -> None:
        """Record progress as a percentage (ffmpeg's `-progress`)."""
        self._offer(ProgressUpdate(self._phase, percent))

    def bytes_done(self, done: int) -> None:
        """Record progress as bytes sent out of `total_bytes`."""
        total = self._total_bytes or 0
        percent = 100.0 if total <= 0 else min(100.0, done / total * 100)
        self._offer(ProgressUpdate(self._phase, round(percent, 1), done, total))

    def _offer(self, update: ProgressUpdate) -> None:
        with self._lock:
            now = self._clock()
            finished = update.percent >= 100 > self._last_percent
            due = self._last_sent is None or now - self._last_sent >= self._min_seconds
            if not (finished or (due and update.percent > self._last_percent)):
                return
            self._last_sent, self._last_percent = now, update.percent
            for sink in self._sinks:
                try:
                    sink(update)
                except Exception as exc:
                    logger.warning("Could not record %s progress: %s", update.phase, exc)
