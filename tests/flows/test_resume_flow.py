"""A large upload broken by a transient failure resumes where it stopped, run after run: the
in-process faststart body and an ffmpeg remux that writes the same bytes again; the sweep leaves
a resumable upload alone and aborts it once its job is done with it."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import col

from flows.retry_upload import retry_upload_job
from flows.sweep import sweep_failed_uploads
from tests.support import mp4_files
from tests.support.bucket_audit import kept_for_resume, open_parts
from tests.support.recordings import write_unfinished_recording
from tests.support.s3_backends import S3Backend
from tests.support.s3_fault_proxy import S3FaultProxy
from tests.support.settings_env import multipart_in_parts_of, set_env, use_settings
from upload_jobs.jobs.database import get_engine
from upload_jobs.jobs.models import JobStatus, UploadAttempt, UploadJob, utcnow
from upload_jobs.jobs.store import JobStore
from upload_jobs.media.remux import resolve_ffmpeg
from upload_jobs.settings import Settings, get_settings
from upload_jobs.storage.spaces import list_open_multipart_uploads, make_s3_client

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

MiB = 1024 * 1024


@pytest.fixture
def parts_of_5_mib(
    settings: Settings, s3_server: S3Backend, monkeypatch: pytest.MonkeyPatch
) -> Iterator[S3FaultProxy]:
    """Uploads in 5 MiB parts, one at a time, one task retry, through a fault proxy."""
    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        set_env(monkeypatch, multipart_in_parts_of(5, concurrency=1))
        use_settings(monkeypatch, endpoint_url=proxy.endpoint_url, s3_max_attempts="1",
                     upload_retries="1")  # fmt: skip
        yield proxy
    get_settings.cache_clear()


def parts_stored(proxy: S3FaultProxy) -> list[int]:
    """The part numbers the endpoint accepted, in order."""
    refused = {id(r) for r in proxy.faulted}
    return [r.part_number or 0 for r in proxy.requests
            if r.kind == "upload_part" and id(r) not in refused]  # fmt: skip


def failed_at_part(proxy: S3FaultProxy, settings: Settings, source: Path, part: int) -> int:
    """A job whose first attempt's upload keeps being refused from `part` on (503 SlowDown):
    it fails after its task retry, its multipart upload kept and recorded."""
    store = JobStore(settings.database_url)
    job = store.add_job(str(source), f"videos/{source.name}", JobStatus.FAILED)
    proxy.fail_always(503, "SlowDown", kinds={"upload_part"}, min_part_number=part)
    retry_upload_job(job.id or 0, return_state=True)
    failed = store.get_job(job.id or 0)
    assert (failed.status, failed.error_kind) == (JobStatus.FAILED, "upload_transient")
    assert kept_for_resume(settings, job.id or 0)
    # The task's own retry already resumed: the parts before `part` were sent once.
    assert parts_stored(proxy) == list(range(1, part))
    proxy.clear_faults()
    proxy.reset_counts()
    return job.id or 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_next_attempt_sends_only_the_parts_missing(
    settings: Settings, parts_of_5_mib: S3FaultProxy, tmp_path: Path
) -> None:
    ffmpeg = resolve_ffmpeg()
    source = mp4_files.noisy_clip(tmp_path / "videos" / "long take.mp4", ffmpeg)
    parts = -(-source.stat().st_size // (5 * MiB))
    assert parts >= 3
    job_id = failed_at_part(parts_of_5_mib, settings, source, parts)

    state = retry_upload_job(job_id, return_state=True)

    store = JobStore(settings.database_url)
    assert state.is_completed() and store.get_job(job_id).status == JobStatus.COMPLETED
    assert parts_stored(parts_of_5_mib) == [parts], "only the last part was sent"
    first, second = store.list_attempts(job_id)
    assert second.optimization_path == "moved_in_process"
    assert second.multipart_upload_id == first.multipart_upload_id
    assert open_parts(settings) == 0
    uploaded = tmp_path / "got.mp4"
    client = make_s3_client(get_settings())
    client.download_file(settings.bucket, f"videos/{source.name}", str(uploaded))
    assert mp4_files.framemd5(ffmpeg, uploaded) == mp4_files.framemd5(ffmpeg, source)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_ffmpeg_remux_resumes_when_it_writes_the_same_bytes_and_starts_afresh_when_not(
    settings: Settings,
    parts_of_5_mib: S3FaultProxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ffmpeg = resolve_ffmpeg()
    source = mp4_files.noisy_clip(tmp_path / "videos" / "take.MOV", ffmpeg, mov_pcm=True)
    store = JobStore(settings.database_url)
    job_id = failed_at_part(parts_of_5_mib, settings, source, 2)
    assert store.list_attempts(job_id)[0].optimization_path == "ffmpeg_remux"

    retry_upload_job(job_id, return_state=True)  # the same ffmpeg writes the same bytes

    assert store.get_job(job_id).status == JobStatus.COMPLETED
    assert parts_stored(parts_of_5_mib)[0] == 2, "part 1 was kept"

    # Once more, with an ffmpeg whose output differs (another tag): the upload starts afresh.
    again = store.add_job(str(source), "videos/take-again.mp4", JobStatus.FAILED)
    parts_of_5_mib.reset_counts()
    parts_of_5_mib.fail_always(503, "SlowDown", kinds={"upload_part"}, min_part_number=2)
    retry_upload_job(again.id or 0, return_state=True)
    parts_of_5_mib.clear_faults()
    parts_of_5_mib.reset_counts()
    tagged = tmp_path / "tagging-ffmpeg"
    tagged.write_text(
        f'#!/bin/bash\nexec "{ffmpeg}" "${{@:1:$#-1}}" -metadata comment=x "${{@: -1}}"\n'
    )
    tagged.chmod(0o755)
    monkeypatch.setenv("UPLOAD_JOBS_FFMPEG", str(tagged))
    get_settings.cache_clear()
    caplog.set_level(logging.INFO)

    retry_upload_job(again.id or 0, return_state=True)

    assert store.get_job(again.id or 0).status == JobStatus.COMPLETED
    assert parts_stored(parts_of_5_mib)[0] == 1, "every part sent: the bytes changed"
    assert "it was started for other bytes" in caplog.text
    assert open_parts(settings) == 0


def hours_ago(settings: Settings, job_id: int, hours: float) -> None:
    """Make the job's attempts look `hours` old (the clean-up ages a kept upload by them)."""
    with get_engine(settings.database_url).begin() as connection:
        connection.execute(
            update(UploadAttempt)
            .where(col(UploadAttempt.job_id) == job_id)
            .values(started_at=utcnow() - timedelta(hours=hours))
        )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_sweep_keeps_a_resumable_upload_and_aborts_it_once_its_job_is_done_with_it(
    settings: Settings, parts_of_5_mib: S3FaultProxy, tmp_path: Path
) -> None:
    source = write_unfinished_recording(tmp_path / "videos" / "unfinished.mp4", 11 * MiB)
    job_id = failed_at_part(parts_of_5_mib, settings, source, 3)
    store = JobStore(settings.database_url)
    sweep: Callable[..., object] = sweep_failed_uploads

    # Not due yet (its backoff): the sweep only tidies up, and even "stale after 0 h" keeps it.
    report = sweep(limit=10, stale_multipart_hours=0, return_state=True).result()
    assert (report.aborted_multipart_uploads, report.kept_multipart_uploads) == (0, 1)
    assert kept_for_resume(settings, job_id)

    # Kept for `resumable_multipart_hours` only.
    hours_ago(settings, job_id, 80)
    report = sweep(limit=10, resumable_multipart_hours=72, return_state=True).result()
    assert (report.aborted_multipart_uploads, report.kept_multipart_uploads) == (1, 0)
    assert open_parts(settings) == 0

    # A job that completed another way (reconcile, a hand upload) is done with its upload.
    other = failed_at_part(parts_of_5_mib, settings, source.rename(source.with_name("b.mp4")), 2)
    with get_engine(settings.database_url).begin() as connection:
        connection.execute(
            update(UploadJob).where(col(UploadJob.id) == other).values(status=JobStatus.COMPLETED)
        )
    report = sweep(limit=10, return_state=True).result()
    assert (report.aborted_multipart_uploads, report.kept_multipart_uploads) == (1, 0)
    assert open_parts(settings) == 0 and store.get_job(job_id).status == JobStatus.FAILED


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("status", "code", "kinds"),
    [
        (404, "NoSuchKey", None),  # RGW's answer for an upload that is gone
        (403, "AccessDenied", None),
        (500, "InternalError", None),
        (403, "AccessDenied", {"upload_part"}),  # listed fine, its parts refused for good
        (500, "InternalError", {"upload_part"}),  # listed fine, its parts refused every time
    ],
    ids=["gone-NoSuchKey", "all-refused-403", "all-refused-500", "parts-403", "parts-500"],
)
def test_no_failure_repeats_on_every_retry_because_of_a_kept_upload(
    settings: Settings,
    parts_of_5_mib: S3FaultProxy,
    tmp_path: Path,
    status: int,
    code: str,
    kinds: set[str] | None,
) -> None:
    # The rule, whatever the endpoint does with an upload the job kept: a retry can succeed.
    ffmpeg = resolve_ffmpeg()
    source = mp4_files.noisy_clip(tmp_path / "videos" / "kept.mp4", ffmpeg)
    store = JobStore(settings.database_url)
    job_id = failed_at_part(parts_of_5_mib, settings, source, 2)
    kept = store.list_attempts(job_id)[0].multipart_upload_id
    parts_of_5_mib.fail_always(status, code, message="", upload_id=kept, kinds=kinds)

    statuses = []
    for _ in range(4):
        retry_upload_job(job_id, return_state=True)
        statuses.append(store.get_job(job_id).status)
        if statuses[-1] == JobStatus.COMPLETED:
            break

    attempts = store.list_attempts(job_id)
    assert statuses[-1] == JobStatus.COMPLETED, [a.error for a in attempts]
    assert attempts[-1].multipart_upload_id != kept, "the last attempt started a fresh upload"
    # A permanent failure gives the upload up at once; the same failure twice in a row, then.
    failures = Counter((a.error_kind, a.error) for a in attempts[1:-1])
    assert max(failures.values(), default=0) <= 2, failures
    parts_of_5_mib.clear_faults()
    client = make_s3_client(get_settings())
    for upload in list_open_multipart_uploads(client, settings.bucket):
        client.abort_multipart_upload(
            Bucket=settings.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        )
    assert open_parts(settings) == 0
