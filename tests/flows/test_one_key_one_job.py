"""One object key, one job, end to end (real ffmpeg, moto over HTTP, a real database and Prefect
server): the recording pipeline's same-named files, a file put at a key by hand, and a job that
replaces its own object, whose path the CDN is told to forget (the DigitalOcean API stand-in)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import update
from sqlmodel import col

from flows.retry_upload import retry_upload_job
from tests.support.command_line import invoke
from tests.support.digitalocean_api import PURGE_PATH, DigitalOceanApi
from tests.support.s3_backends import S3Backend
from tests.support.secret_sightings import Sightings, prefect_console, read_prefect_server
from upload_jobs.errors import ErrorKind
from upload_jobs.jobs.database import get_engine
from upload_jobs.jobs.models import JobStatus, UploadJob
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings, get_settings
from upload_jobs.storage.objects import find_existing_object
from upload_jobs.storage.spaces import make_s3_client

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server")]

DO_TOKEN = "dop_v1_leakcheck-cdn-purge-0123456789"
CDN_ENDPOINT = "5d2b4c8e-6f1a-4b3c-9d7e-0a1b2c3d4e5f"


def test_the_pipelines_same_named_files_each_keep_their_own_video(
    settings: Settings, clip, s3_server: S3Backend
) -> None:
    days = [clip("moov_at_end", f"rec/2026-11-2{n}/merged.mp4") for n in (3, 4)]
    ids = []
    for source in days:
        code, output = invoke("add", str(source), "--json")
        assert code == 0, output
        ids.append(json.loads(output)["id"])
    for job_id in reversed(ids):  # as in the report: day 2 first, then day 1
        code, output = invoke("retry", str(job_id), "--json")
        assert code == 0, output

    client = make_s3_client(settings)
    for job_id, day in zip(ids, ("2026-11-23", "2026-11-24"), strict=True):
        job = JobStore(settings.database_url).get_job(job_id)
        assert job.object_key == f"videos/{day}/merged.mp4"
        stored = find_existing_object(client, settings.bucket, job.object_key)
        assert stored is not None and stored.owner == str(job_id)
        assert stored.size_bytes == job.uploaded_size_bytes
    code, output = invoke("reconcile", "--dry-run", "--json")
    assert (
        code == 0 and json.loads(output)["changes"] == [] and json.loads(output)["conflicts"] == []
    )


def test_a_file_put_at_the_jobs_key_by_hand_fails_the_job_and_stays(
    settings: Settings, clip, s3_server: S3Backend
) -> None:
    source = clip("moov_at_end", "talk.mp4")
    store = JobStore(settings.database_url)
    job = store.add_job(str(source), "videos/talk.mp4", JobStatus.FAILED)
    client = make_s3_client(settings)
    client.put_object(Bucket=settings.bucket, Key="videos/talk.mp4", Body=b"slides, not a video")
    s3_server.reset_counts()

    state = retry_upload_job(job.id or 0, return_state=True)

    assert not state.is_completed()
    failed = store.get_job(job.id or 0)
    assert (failed.status, failed.error_kind) == (JobStatus.FAILED, ErrorKind.KEY_CONFLICT)
    assert "already holds a file upload-jobs did not upload (19 bytes" in (failed.last_error or "")
    assert "it was not overwritten" in (failed.last_error or "")
    body = client.get_object(Bucket=settings.bucket, Key="videos/talk.mp4")["Body"].read()
    assert body == b"slides, not a video"
    assert s3_server.count("put_object") == 0
    # The sweep leaves it alone too: its reconcile sees the conflict, so no run writes there.
    with get_engine(settings.database_url).begin() as connection:
        connection.execute(
            update(UploadJob).where(col(UploadJob.id) == job.id).values(next_attempt_at=None)
        )
    code, output = invoke("sweep", "--json")
    report = json.loads(output)
    assert code == 0 and report["key_conflicts"] == [job.id] and report["picked"] == []


@pytest.fixture
def cdn(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[DigitalOceanApi]:
    """The DigitalOcean API stand-in, with the token and CDN endpoint configured."""
    with DigitalOceanApi(DO_TOKEN, {CDN_ENDPOINT}) as api:
        monkeypatch.setenv("UPLOAD_JOBS_DIGITALOCEAN_TOKEN", DO_TOKEN)
        monkeypatch.setenv("UPLOAD_JOBS_CDN_ENDPOINT_ID", CDN_ENDPOINT)
        monkeypatch.setenv("UPLOAD_JOBS_DIGITALOCEAN_API_URL", api.url)
        get_settings.cache_clear()
        yield api
    get_settings.cache_clear()


def test_replacing_its_own_object_purges_the_path_once_and_the_token_never_shows(
    settings: Settings,
    clip,
    cdn: DigitalOceanApi,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    since = datetime.now(UTC)
    sightings = Sightings()
    store = JobStore(settings.database_url)
    source = clip("moov_at_end", "keynote.mp4")
    job = store.add_job(str(source), "videos/keynote.mp4", JobStatus.FAILED)
    job_id = job.id or 0
    with prefect_console() as console:
        assert retry_upload_job(job_id, return_state=True).is_completed()
        assert cdn.requests == [], "a first upload replaces nothing: no purge"
        # Its object turns out wrong (an older take at its key, reconcile reopened the job):
        # the next run replaces it, and the CDN must forget the bytes it may have cached.
        client = make_s3_client(settings)
        client.put_object(Bucket=settings.bucket, Key="videos/keynote.mp4", Body=b"older take",
                          Metadata={"upload-job-id": str(job_id)})  # fmt: skip
        with get_engine(settings.database_url).begin() as connection:
            connection.execute(
                update(UploadJob).where(col(UploadJob.id) == job_id).values(status="failed")
            )
        assert retry_upload_job(job_id, return_state=True).is_completed()
        code, shown = invoke("show", str(job_id), "--json")
        assert code == 0, shown
        read_prefect_server(sightings, since)

    [purge] = cdn.purges()
    assert (purge.method, purge.path) == ("DELETE", PURGE_PATH.format(endpoint_id=CDN_ENDPOINT))
    assert purge.body == {"files": ["videos/keynote.mp4"]}
    assert len(cdn.requests) == 1, "exactly one purge request"
    last = store.list_attempts(job_id)[-1]
    assert (last.cdn_purge, last.outcome) == ("purged", "completed")
    stored = client.get_object(Bucket=settings.bucket, Key="videos/keynote.mp4")["Body"].read()
    assert len(stored) == store.get_job(job_id).uploaded_size_bytes and stored != b"older take"

    sightings.add("cli show", shown)
    sightings.add("prefect console", console.getvalue())
    sightings.add("logs", caplog.text)
    sightings.add("stdout and stderr", *capfd.readouterr())
    assert "CDN: purged videos/keynote.mp4" in sightings.text("prefect logs")
    for where in ("cli show", "prefect console", "logs", "stdout and stderr", "prefect logs",
                  "prefect flow runs", "prefect task runs", "prefect artifacts"):  # fmt: skip
        assert DO_TOKEN not in sightings.text(where), where


def test_a_purge_that_fails_is_a_warning_on_the_attempt_not_a_failed_upload(
    settings: Settings, clip, cdn: DigitalOceanApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPLOAD_JOBS_CDN_ENDPOINT_ID", "an-endpoint-that-is-not-there")
    get_settings.cache_clear()
    store = JobStore(settings.database_url)
    job = store.add_job(str(clip("faststart", "a.mp4")), "videos/a.mp4", JobStatus.FAILED)
    client = make_s3_client(settings)
    client.put_object(Bucket=settings.bucket, Key="videos/a.mp4", Body=b"older",
                      Metadata={"upload-job-id": str(job.id)})  # fmt: skip

    assert retry_upload_job(job.id or 0, return_state=True).is_completed()

    assert store.get_job(job.id or 0).status == JobStatus.COMPLETED
    [attempt] = store.list_attempts(job.id or 0)
    assert attempt.cdn_purge == "failed" and "could not be found" in (
        attempt.cdn_purge_detail or ""
    )
