"""Where a task's live progress goes: the job store (the jobs page) and a Prefect progress
artifact (the Prefect UI), both throttled to about one write a second."""

from __future__ import annotations

from functools import partial
from typing import cast
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from upload_jobs.live_progress import (
    Phase,
    ProgressSink,
    ProgressTarget,
    ProgressUpdate,
    ThrottledProgress,
)
from upload_jobs.settings import get_settings
from upload_jobs.store import JobStore


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
        store = JobStore(get_settings().database_url)
        sinks.append(partial(store.record_progress, target.attempt_id))
        artifact = create_progress_artifact(
            progress=0.0, key=f"upload-job-{target.job_id}-{phase}", description=description
        )
        artifact_id = cast(UUID, artifact)  # called from sync code: the UUID, not a coroutine
        sinks.append(partial(_update_artifact, artifact_id))
    return ThrottledProgress(phase, sinks, total_bytes=total_bytes)


def _update_artifact(artifact_id: UUID, progress: ProgressUpdate) -> None:
    update_progress_artifact(artifact_id=artifact_id, progress=progress.percent)
