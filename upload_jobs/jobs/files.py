"""The source file's checks and the per-attempt work folder (never touching the source)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from upload_jobs.errors import SourceEmpty, SourceMissing, SourceNotVideo, SourceUnreadable
from upload_jobs.media.file_kinds import SNIFF_BYTES, describe_file_kind
from upload_jobs.media.mp4 import starts_like_mp4
from upload_jobs.storage.upload_body import UploadBody

MEGABYTE = 1024 * 1024


def check_source_file(path: str | Path) -> int:
    """The source video's size in bytes; `SourceMissing`, `SourceEmpty`, `SourceUnreadable`
    or `SourceNotVideo` (bytes that are no MP4/MOV are never uploaded as a video)."""
    source = Path(path)
    try:
        stat = source.stat()
    except FileNotFoundError:
        raise SourceMissing(str(path)) from None
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    except ValueError:  # a NUL in the path: no file can have that name
        raise SourceUnreadable(f"Original video path contains a NUL character: {path!r}") from None
    if not source.is_file():
        raise SourceUnreadable(f"Original video path is not a regular file: {path}")
    if stat.st_size == 0:
        raise SourceEmpty(str(path))
    try:
        with source.open("rb") as handle:
            header = handle.read(SNIFF_BYTES)
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    if not starts_like_mp4(header):
        raise _not_video(path, header)
    return stat.st_size


def _not_video(path: str | Path, header: bytes) -> SourceNotVideo:
    kind = describe_file_kind(header)
    if kind is None:
        return SourceNotVideo(
            f"Original file is not MP4 or QuickTime (its first bytes match no video format this "
            f"service knows): {path}"
        )
    return SourceNotVideo(f"Original file is {kind}, not MP4 or QuickTime: {path}")


def _unreadable(path: str | Path, exc: OSError) -> SourceUnreadable:
    return SourceUnreadable(f"Original video file cannot be read: {path} ({exc.strerror})")


def upload_size_bytes(body: UploadBody) -> int:
    """The size of what is about to be uploaded; `SourceChanged` if its file changed since."""
    body.check_unchanged()
    return body.size


def format_megabytes(size_bytes: int) -> str:
    """A size as people read it in logs: `12.34 MB` (MiB, as most tools print)."""
    return f"{size_bytes / MEGABYTE:.2f} MB"


def attempt_work_dir(work_dir: Path, job_id: int, attempt_number: int) -> Path:
    """A folder name, unique to one attempt, for its temp files; created by whoever writes."""
    return work_dir / f"job-{job_id}-attempt-{attempt_number}-{uuid.uuid4().hex[:8]}"


def remove_attempt_work_dir(folder: Path, source_path: str | Path) -> bool:
    """Delete an attempt's folder, and those the job's earlier attempts left (a run that was
    killed cleans nothing up; only one run holds a job, so the others are gone); refuses a
    folder that holds the source video itself."""
    source = Path(source_path).resolve()
    job = folder.name.split("-attempt-", 1)[0]
    earlier = folder.parent.glob(f"{job}-attempt-*") if folder.parent.is_dir() else iter(())
    removed = False
    for leftover in {folder, *earlier}:
        if not leftover.is_dir():
            continue
        if source.is_relative_to(leftover.resolve()):
            raise ValueError(
                f"Refusing to delete {leftover}: it contains the source video {source}"
            )
        shutil.rmtree(leftover, ignore_errors=True)
        removed = True
    return removed
