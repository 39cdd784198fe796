"""Uploads of many objects for one job (an HLS package) under the job's key prefix, and the
removal of what no longer belongs to its upload. Every object goes up as a video does
(`spaces.upload_video`): named for its job, never over another's, skipped when the same bytes
are there already (a resumed upload sends only what is missing). The master playlist goes up
last, so no player finds a playlist naming a file not there yet."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from upload_jobs.storage.failures import classified_upload_errors
from upload_jobs.storage.objects import find_existing_object
from upload_jobs.storage.ownership import KeyOwner
from upload_jobs.storage.spaces import UploadResult, upload_video

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PLAYLIST_CONTENT_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_CONTENT_TYPE = "video/mp4"  # fMP4 init and media segments


def package_prefix(object_key: str) -> str:
    """Where a job's HLS objects go: its key without the extension, as a folder
    (`videos/2026/talk.mp4` -> `videos/2026/talk/`)."""
    path = PurePosixPath(object_key)
    return f"{path.with_suffix('') if path.suffix else path}/"


def content_type_of(name: str) -> str:
    """The Content-Type an HLS file is served with."""
    return PLAYLIST_CONTENT_TYPE if name.endswith(".m3u8") else SEGMENT_CONTENT_TYPE


@dataclass(frozen=True)
class PackageUpload:
    """What went up: the master playlist's result, every object's key, how many were already
    there with the same bytes, the bytes sent, and whether any replaced an older one of ours."""

    master: UploadResult
    keys: tuple[str, ...]
    skipped_existing: int
    size_bytes: int
    replaced: bool


@dataclass(frozen=True)
class PackageTarget:
    """Where and how the package's objects are written."""

    bucket: str
    prefix: str
    owner: KeyOwner
    acl: str
    cache_control: str
    multipart_threshold: int
    chunk_size: int
    concurrency: int = 4


def upload_package(
    client: S3Client,
    directory: Path,
    files: list[str],
    target: PackageTarget,
    on_progress: Callable[[int], None] | None = None,
) -> PackageUpload:
    """Upload `files` (relative to `directory`, the master playlist last) under the target's
    prefix, `concurrency` at a time, the last one only once all others are stored;
    `on_progress` sees the bytes done so far. KeyConflict, and that object not written, when a
    key holds another's object."""
    done, lock = [0], threading.Lock()

    def upload_one(name: str) -> UploadResult:
        last = 0

        def count(sent: int) -> None:
            nonlocal last
            with lock:
                done[0] += sent - last
                last = sent
                total = done[0]
            if on_progress is not None:
                on_progress(total)

        return upload_video(
            client, target.bucket, directory / name, target.prefix + name, owner=target.owner,
            acl=target.acl, cache_control=target.cache_control,
            multipart_threshold=target.multipart_threshold, chunk_size=target.chunk_size,
            concurrency=1, on_progress=count, content_type=content_type_of(name),
        )  # fmt: skip

    *media, master_name = files
    with ThreadPoolExecutor(max_workers=max(1, target.concurrency)) as pool:
        # Each upload sees the caller's context (its run, its lease): progress and lease checks
        # from a worker thread are the run's own.
        futures = [pool.submit(contextvars.copy_context().run, upload_one, n) for n in media]
        results = [future.result() for future in futures]
    master = upload_one(master_name)
    results.append(master)
    return PackageUpload(
        master,
        tuple(r.key for r in results),
        sum(r.skipped_existing for r in results),
        sum(r.size_bytes for r in results),
        any(r.replaced for r in results),
    )


def remove_objects_left_behind(
    client: S3Client,
    bucket: str,
    owner: KeyOwner,
    keep: set[str],
    prefix: str,
    single_key: str,
) -> list[str]:
    """Delete the job's own objects its new upload does not use: under its HLS `prefix` and its
    single-file `single_key`, except `keep`. Another's objects are never touched. The keys
    removed."""
    candidates = [single_key] if single_key not in keep else []
    with classified_upload_errors(bucket):
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        candidates += [o["Key"] for page in pages for o in page.get("Contents", [])]
    removed = []
    for key in candidates:
        if key in keep:
            continue
        existing = find_existing_object(client, bucket, key)
        if existing is None or not owner.owns(existing):
            continue
        with classified_upload_errors(bucket):
            client.delete_object(Bucket=bucket, Key=key)
        removed.append(key)
    return removed
