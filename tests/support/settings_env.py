"""Product settings a test changes: environment variables, then the cached settings dropped."""

from __future__ import annotations

import pytest

from upload_jobs.settings import get_settings

MiB = 1024 * 1024


def set_env(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    """Set environment variables (full names); the product re-reads its settings."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def use_settings(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    """Set `UPLOAD_JOBS_*` variables (named without the prefix); the product re-reads them."""
    set_env(
        monkeypatch, {f"UPLOAD_JOBS_{name.upper()}": value for name, value in variables.items()}
    )


def multipart_in_parts_of(mib: int, *, concurrency: int | None = None) -> dict[str, str]:
    """Settings for multipart uploads from `mib` MiB, in parts of that size (`concurrency` at
    once when given)."""
    variables = {
        "UPLOAD_JOBS_MULTIPART_THRESHOLD_BYTES": str(mib * MiB),
        "UPLOAD_JOBS_MULTIPART_CHUNK_BYTES": str(mib * MiB),
    }
    if concurrency is not None:
        variables["UPLOAD_JOBS_UPLOAD_CONCURRENCY"] = str(concurrency)
    return variables
