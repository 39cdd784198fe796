"""Global concurrency slots (ffmpeg, uploads) shared by every worker, when they are turned on."""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache

from prefect.concurrency.sync import concurrency

from upload_jobs.settings import get_settings


def ffmpeg_slot() -> AbstractContextManager[object]:
    """Hold one of the `ffmpeg-slots` while remuxing (protects workers' CPU and disk)."""
    settings = get_settings()
    return _slot(settings.ffmpeg_slots_limit, settings.use_concurrency_limits)


def upload_slot() -> AbstractContextManager[object]:
    """Hold one of the `upload-slots` while uploading (keeps under Spaces' request rates)."""
    settings = get_settings()
    return _slot(settings.upload_slots_limit, settings.use_concurrency_limits)


def _slot(limit_name: str, enabled: bool) -> AbstractContextManager[object]:
    if not enabled:
        return nullcontext()
    # Not strict: a limit nobody created means "not limited" (Prefect logs a warning); failing
    # here would turn every remux into a fallback and every upload into a failed job.
    return concurrency(limit_name, occupy=1, strict=False)


def transcode_slot() -> AbstractContextManager[object]:
    """Hold one of this process's `transcode_concurrency` slots while re-encoding: x264 takes
    every core it is given, so a sweep's jobs queue for the CPU instead of sharing it thinly."""
    return _transcode_slots(get_settings().transcode_concurrency)


@lru_cache(maxsize=4)
def _transcode_slots(count: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(count)
