"""A sweep's plain parts: its report, the circuit breaker, and work-dir housekeeping."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class SweepMode(StrEnum):
    """Where a sweep runs the retries it picks."""

    LOCAL = "local"
    DISTRIBUTED = "distributed"


@dataclass
class SweepReport:
    """What one sweep did, job ids per outcome; the table artifact and `upload-jobs sweep`."""

    mode: str
    reaped: list[int] = field(default_factory=list)
    reconciled: list[int] = field(default_factory=list)
    key_conflicts: list[int] = field(default_factory=list)
    picked: list[int] = field(default_factory=list)
    skipped_missing_source: list[int] = field(default_factory=list)
    # Jobs a retry run is queued for already (an event-triggered one waiting out the backoff).
    retry_queued: list[int] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)
    optimized: list[int] = field(default_factory=list)
    fell_back: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    claimed_elsewhere: list[int] = field(default_factory=list)
    not_run: list[int] = field(default_factory=list)
    flow_runs_started: dict[int, str] = field(default_factory=dict)
    stopped_early: str | None = None
    aborted_multipart_uploads: int = 0
    kept_multipart_uploads: int = 0
    cleanup_skipped: str | None = None
    removed_temp_files: int = 0

    def summary(self) -> str:
        """What the sweep did, in a line: `2 completed, 1 failed, 3 set aside`."""
        set_aside = (
            self.key_conflicts + self.skipped_missing_source + self.retry_queued
            + self.claimed_elsewhere + self.not_run
        )  # fmt: skip
        counts = [
            (len(self.completed) + len(self.reconciled), "completed"),
            (len(self.flow_runs_started), "started on workers"),
            (len(self.failed), "failed"),
            (len(set_aside), "set aside"),
            (len(self.reaped), "taken back from lost runs"),
        ]
        said = ", ".join(f"{count} {what}" for count, what in counts if count)
        said = said or "nothing due"
        return f"{said}; stopped early: {self.stopped_early}" if self.stopped_early else said

    def rows(self) -> list[dict[str, Any]]:
        """One row per outcome: what, how many, which job ids."""
        outcomes = [
            ("leases expired (worker lost)", self.reaped),
            ("already in the bucket: marked completed", self.reconciled),
            ("skipped: key holds another's object", self.key_conflicts),
            ("picked for retry", self.picked),
            ("skipped: source file missing", self.skipped_missing_source),
            ("skipped: a retry run is queued", self.retry_queued),
            ("started on workers", sorted(self.flow_runs_started)),
            ("completed", self.completed),
            ("optimized for streaming", self.optimized),
            ("fell back to the original", self.fell_back),
            ("failed", self.failed),
            ("skipped: another run held it", self.claimed_elsewhere),
            ("not run (sweep stopped early)", self.not_run),
        ]
        rows = [
            {"outcome": name, "jobs": len(ids), "job_ids": ", ".join(map(str, ids))}
            for name, ids in outcomes
        ]
        rows.append(
            {
                "outcome": "stale multipart uploads aborted",
                "jobs": self.aborted_multipart_uploads,
                "job_ids": "",
            }
        )
        rows.append(
            {
                "outcome": "multipart uploads kept for a resume",
                "jobs": self.kept_multipart_uploads,
                "job_ids": "",
            }
        )
        rows.append(
            {"outcome": "stale temp files removed", "jobs": self.removed_temp_files, "job_ids": ""}
        )
        return rows

    def record_retry(
        self, job_id: int, status: str, optimized: bool, fallback_reason: str | None
    ) -> None:
        """File one finished local retry under its outcome."""
        if status == "completed":
            self.completed.append(job_id)
            if optimized:
                self.optimized.append(job_id)
            elif fallback_reason:
                self.fell_back.append(job_id)
        else:
            self.failed.append(job_id)


class CircuitBreaker:
    """Opens after `threshold` permanent configuration errors in a row (bad keys, no bucket)."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self._streak = 0
        self.reason: str | None = None

    @property
    def open(self) -> bool:
        """Whether the sweep should stop starting retries."""
        return self.reason is not None

    def record(self, error_kind: str | None, error: str | None) -> None:
        """Count one finished retry; a success or an unrelated failure resets the streak."""
        if error_kind != "upload_permanent":
            self._streak = 0
            return
        self._streak += 1
        if self._streak >= self.threshold and self.reason is None:
            self.reason = (
                f"stopped after {self._streak} permanent upload errors in a row "
                f"(last: {error}); fix the configuration, then sweep again"
            )


def remove_stale_temp_files(work_dir: Path, older_than_seconds: float) -> int:
    """Delete files in the work dir not touched for `older_than_seconds`; returns how many."""
    if not work_dir.is_dir():
        return 0
    cutoff = time.time() - older_than_seconds
    removed = 0
    for path in sorted(work_dir.rglob("*"), reverse=True):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
            elif path.is_dir() and path != work_dir and not any(path.iterdir()):
                path.rmdir()
        except FileNotFoundError:
            continue  # a concurrent attempt's cleanup got there first
    return removed
