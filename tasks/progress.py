"""Where a task's live progress goes: the job store (the jobs page) and a Prefect progress
artifact (the Prefect UI), both throttled to about one write a second."""

from __future__ import annotations

import time
from functools import partial
from typing import cast
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from upload_jobs.jobs.live_progress import (
    Phase,
    ProgressSink,
    ProgressTarget,
    ProgressUpdate,
    ThrottledProgress,
)
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import get_settings


def live_progress(
    target: ProgressTarget | None,
    phase: Phase,
    description: str,
    *,
    total_bytes: int | None = None,
) -> ThrottledProgress:
    """A progress recorder for one step of `target`'s run (inert when there is no target)."""
    sinks: list[ProgressSink] = []
    if target is not None:
        settings = get_settings()
        store = JobStore(settings.database_url)
        sinks.append(partial(store.record_progress, target.attempt_id))
        key = f"upload-job-{target.job_id}-{phase}"
        sinks.append(ProgressArtifact(key, description, settings.progress_artifact_after_seconds))
    return ThrottledProgress(phase, sinks, total_bytes=total_bytes)


class ProgressArtifact:
    """A Prefect progress artifact made at the first reading once the step has run for
    `after_seconds`, and updated from then on; a shorter step makes none."""

    def __init__(self, key: str, description: str, after_seconds: float) -> None:
        self._key = key
        self._description = description
        self._made_after = time.monotonic() + after_seconds
        self._artifact_id: UUID | None = None

    def __call__(self, progress: ProgressUpdate) -> None:
        """Show `progress` in the Prefect UI (a no-op while the step is still young)."""
        if self._artifact_id is not None:
            update_progress_artifact(artifact_id=self._artifact_id, progress=progress.percent)
        elif time.monotonic() >= self._made_after:
            artifact = create_progress_artifact(
                progress=progress.percent, key=self._key, description=self._description
            )
            self._artifact_id = cast(UUID, artifact)  # from sync code: the UUID, not a coroutine
