"""Reconcile on a real job database and moto's S3 over HTTP: statuses follow the bucket."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.command_line import invoke
from tests.support.leases import expire_lease
from tests.support.recordings import write_unfinished_recording
from upload_jobs.errors import ErrorKind
from upload_jobs.jobs.attempt_report import AttemptReport
from upload_jobs.jobs.models import AttemptOutcome, JobStatus
from upload_jobs.jobs.reconcile import Change, ReconcileScope, reconcile_jobs
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings, get_settings
from upload_jobs.storage.checksums import file_sha256
from upload_jobs.storage.ownership import KeyOwner
from upload_jobs.storage.spaces import UploadResult, make_s3_client, public_url, upload_video

LEASE = timedelta(minutes=10)


def put(settings: Settings, path: Path, key: str, job_id: int) -> UploadResult:
    """Upload `path` as `key` the way job `job_id`'s run does (sha256 and job in the metadata)."""
    client = make_s3_client(settings)
    owner = KeyOwner(job_id)
    return upload_video(client, settings.bucket, path, key, owner=owner, acl="", cache_control="")


def reconcile(settings: Settings, **options: object) -> object:
    """Run reconcile on the test's database and bucket."""
    return reconcile_jobs(
        settings.database_url,
        make_s3_client(settings),
        settings.bucket,
        lambda key: public_url(settings, key),
        **options,  # type: ignore[arg-type]
    )


class Jobs:
    """Builds jobs in the states a crash or a lost object leaves behind."""

    def __init__(self, settings: Settings, tmp_path: Path) -> None:
        self.settings, self.tmp_path = settings, tmp_path
        self.store = JobStore(settings.database_url)

    def source(self, name: str) -> Path:
        """A small source file that passes for a video."""
        return write_unfinished_recording(self.tmp_path / name, 4096)

    def add(self, name: str, status: JobStatus = JobStatus.FAILED) -> tuple[int, Path]:
        """A job for a new source file `name`, in `status` (completed ones are uploaded)."""
        source = self.source(name)
        job = self.store.add_job(str(source), f"videos/{name}", JobStatus.FAILED)
        assert job.id is not None
        if status == JobStatus.COMPLETED:
            self.run(job.id, upload=source, succeed=True)
        return job.id, source

    def run(self, job_id: int, upload: Path | None, succeed: bool, die: bool = False) -> None:
        """One attempt: uploads `upload` (recording its intent), then ends as asked."""
        claim = self.store.claim_job(job_id, "worker-1", LEASE)
        report = AttemptReport(preset="faststart", optimized=True)
        if upload is not None:
            result = put(self.settings, upload, claim.object_key, job_id)
            self.store.record_upload_intent(
                claim.attempt_id, result.size_bytes, result.sha256, optimized=True
            )
            report.uploaded_size_bytes = result.size_bytes
        if die:
            expire_lease(self.settings.database_url, job_id)
        elif succeed:
            from upload_jobs.jobs.attempt_report import StoredObject

            self.store.mark_completed(claim, report, StoredObject("https://cdn/x", "etag"))
        else:
            self.store.mark_failed(claim, report, "503 SlowDown", ErrorKind.UPLOAD_TRANSIENT)


@pytest.fixture
def jobs(settings: Settings, tmp_path: Path) -> Jobs:
    return Jobs(settings, tmp_path)


def test_failed_and_stuck_jobs_whose_object_is_there_become_completed(
    settings: Settings, jobs: Jobs
) -> None:
    # The upload landed but the verifying HEAD failed: the job was marked failed.
    failed, _ = jobs.add("verify-failed.mp4")
    optimized_copy = jobs.source("remuxed.mp4")
    jobs.run(failed, upload=optimized_copy, succeed=False)
    # The run died between upload and mark; no intent recorded, but the object is the source.
    stuck, stuck_source = jobs.add("died.mp4")
    jobs.run(stuck, upload=None, succeed=False, die=True)
    put(settings, stuck_source, "videos/died.mp4", stuck)
    # Still running (lease valid), never uploaded, and uploaded but with other bytes: left alone.
    running, running_source = jobs.add("running.mp4")
    jobs.store.claim_job(running, "worker-2", LEASE)
    put(settings, running_source, "videos/running.mp4", running)
    never, _ = jobs.add("never.mp4")
    other, _ = jobs.add("other.mp4")
    put(settings, jobs.source("an-older-take.mp4"), "videos/other.mp4", other)

    report = reconcile(settings, scope=ReconcileScope.UNFINISHED)

    assert sorted(report.completed) == sorted([failed, stuck])  # type: ignore[attr-defined]
    assert report.checked == 4 and report.in_agreement == 2  # type: ignore[attr-defined]
    store = jobs.store
    done = store.get_job(failed)
    assert (done.status, done.error_kind, done.optimized_for_streaming) == (
        JobStatus.COMPLETED, None, True
    )  # fmt: skip
    assert done.uploaded_size_bytes == optimized_copy.stat().st_size
    assert done.public_url == public_url(settings, "videos/verify-failed.mp4")
    recovered = store.get_job(stuck)
    assert (recovered.status, recovered.optimized_for_streaming) == (JobStatus.COMPLETED, False)
    assert recovered.lease_owner is None
    assert [a.outcome for a in store.list_attempts(stuck)] == [AttemptOutcome.COMPLETED]
    assert store.get_job(running).status == JobStatus.IN_PROGRESS
    assert store.get_job(never).status == store.get_job(other).status == JobStatus.FAILED


def test_completed_jobs_whose_object_is_gone_are_set_back_to_failed(
    settings: Settings, jobs: Jobs
) -> None:
    kept, _ = jobs.add("kept.mp4", JobStatus.COMPLETED)
    deleted, _ = jobs.add("deleted.mp4", JobStatus.COMPLETED)
    replaced, _ = jobs.add("replaced.mp4", JobStatus.COMPLETED)
    client = make_s3_client(settings)
    client.delete_object(Bucket=settings.bucket, Key="videos/deleted.mp4")
    # The job's own object, but not the bytes it recorded (an older take of its video).
    client.put_object(Bucket=settings.bucket, Key="videos/replaced.mp4", Body=b"short",
                      Metadata={"upload-job-id": str(replaced)})  # fmt: skip

    dry = reconcile(settings, dry_run=True)
    assert sorted(dry.reopened) == sorted([deleted, replaced])  # type: ignore[attr-defined]
    assert "would be set back to failed" in dry.summary()  # type: ignore[attr-defined]
    assert jobs.store.get_job(deleted).status == JobStatus.COMPLETED, "a dry run changes nothing"

    report = reconcile(settings)

    assert sorted(report.reopened) == sorted([deleted, replaced])  # type: ignore[attr-defined]
    reasons = {c.job_id: c.reason for c in report.changes}  # type: ignore[attr-defined]
    assert reasons[deleted] == f"s3://{settings.bucket}/videos/deleted.mp4 is not in the bucket"
    assert "holds 5 bytes, the job uploaded 4096" in reasons[replaced]
    job = jobs.store.get_job(deleted)
    assert (job.status, job.error_kind, job.public_url) == (
        JobStatus.FAILED, ErrorKind.OBJECT_MISSING, None
    )  # fmt: skip
    assert "the next sweep uploads it again" in (job.last_error or "")
    assert job.optimized_for_streaming is False and job.completed_at is None
    assert jobs.store.due_jobs(10, 5)[0].id in (deleted, replaced), "due at once"
    assert jobs.store.get_job(kept).status == JobStatus.COMPLETED
    assert report.summary() == (  # type: ignore[attr-defined]
        f"Checked 3 jobs against s3://{settings.bucket}: 0 marked completed, "
        "2 set back to failed, 1 agree."
    )
    assert reconcile(settings).changes == []  # type: ignore[attr-defined]


def test_a_key_holding_an_object_not_the_jobs_is_a_conflict_and_nothing_changes(
    settings: Settings, jobs: Jobs
) -> None:
    client = make_s3_client(settings)
    # A completed job's object replaced by hand, without any metadata.
    by_hand, _ = jobs.add("by-hand.mp4", JobStatus.COMPLETED)
    client.put_object(Bucket=settings.bucket, Key="videos/by-hand.mp4", Body=b"a poster frame")
    # A failed job whose key holds another job's video.
    other, _ = jobs.add("other.mp4")
    theirs, their_source = jobs.add("theirs.mp4")
    put(settings, their_source, "videos/other.mp4", theirs)
    # A failed job whose object is its own, from before objects named their job: it uploaded
    # these bytes (the sha256 its attempt recorded), so it is completed, not a conflict.
    legacy, legacy_source = jobs.add("legacy.mp4")
    jobs.run(legacy, upload=None, succeed=False)
    intent = jobs.store.list_attempts(legacy)[-1]
    sha256 = file_sha256(legacy_source)
    jobs.store.record_upload_intent(intent.id or 0, legacy_source.stat().st_size, sha256, False)
    client.put_object(Bucket=settings.bucket, Key="videos/legacy.mp4",
                      Body=legacy_source.read_bytes(), Metadata={"sha256": sha256})  # fmt: skip
    before = {key: client.get_object(Bucket=settings.bucket, Key=key)["Body"].read()
              for key in ("videos/by-hand.mp4", "videos/other.mp4")}  # fmt: skip

    report = reconcile(settings)

    conflicts = {c.job_id: c for c in report.conflicts}  # type: ignore[attr-defined]
    assert sorted(conflicts) == sorted([by_hand, other])
    assert conflicts[by_hand].held_by.startswith("a file upload-jobs did not upload (14 bytes")
    assert conflicts[other].held_by.startswith(f"upload job {theirs}'s video")
    assert report.completed == [legacy]  # type: ignore[attr-defined]
    assert jobs.store.get_job(by_hand).status == JobStatus.COMPLETED  # never reopened over it
    assert jobs.store.get_job(other).status == JobStatus.FAILED
    after = {key: client.get_object(Bucket=settings.bucket, Key=key)["Body"].read()
             for key in before}  # fmt: skip
    assert after == before
    summary = report.summary()  # type: ignore[attr-defined]
    assert "2 keys hold another's object (left alone)" in summary

    code, output = invoke("reconcile", "--json")
    answer = json.loads(output)
    assert code == 1 and {c["job_id"] for c in answer["conflicts"]} == {by_hand, other}
    assert f"The keys of jobs {min(by_hand, other)}, {max(by_hand, other)}" in answer["error"]


def test_the_sweep_scope_leaves_completed_jobs_alone(settings: Settings, jobs: Jobs) -> None:
    deleted, _ = jobs.add("deleted.mp4", JobStatus.COMPLETED)
    make_s3_client(settings).delete_object(Bucket=settings.bucket, Key="videos/deleted.mp4")
    report = reconcile(settings, scope=ReconcileScope.UNFINISHED)
    assert report.checked == 0  # type: ignore[attr-defined]
    assert jobs.store.get_job(deleted).status == JobStatus.COMPLETED


def test_large_tables_are_read_in_batches_and_limited(
    settings: Settings, jobs: Jobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("upload_jobs.jobs.reconcile.BATCH", 2)
    ids = [jobs.store.add_job(f"/v/{n}.mp4", f"videos/{n}.mp4", JobStatus.FAILED).id
           for n in range(5)]  # fmt: skip
    seen: list[int] = []
    report = reconcile(settings, limit=4, on_checked=seen.append)
    assert report.checked == 4 and seen == [2, 4]  # type: ignore[attr-defined]
    assert len(ids) == 5 and all(c.change is Change.COMPLETED for c in report.changes)  # type: ignore[attr-defined]


def test_the_cli_shows_what_it_would_change_then_changes_it(
    settings: Settings, jobs: Jobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    deleted, _ = jobs.add("deleted é.mp4", JobStatus.COMPLETED)
    stuck, source = jobs.add("stuck.mp4")
    jobs.run(stuck, upload=source, succeed=False, die=True)
    make_s3_client(settings).delete_object(Bucket=settings.bucket, Key="videos/deleted é.mp4")

    code, output = invoke("reconcile", "--dry-run")
    assert code == 0, output
    assert "Jobs whose status disagreed with the bucket" in output and "deleted é.mp4" in output
    assert "1 would be marked completed, 1 would be set back to failed, 0 agree" in output
    assert "Dry run: nothing was changed. Run without --dry-run to apply." in output
    assert jobs.store.get_job(deleted).status == JobStatus.COMPLETED

    code, output = invoke("reconcile", "--json")
    payload = json.loads(output)
    assert code == 0 and payload["dry_run"] is False and payload["in_agreement"] == 0
    changes = {change["job_id"]: change for change in payload["changes"]}
    assert changes[deleted]["change"] == "set back to failed"
    assert changes[stuck]["previous_status"] == "in_progress"
    assert jobs.store.get_job(stuck).status == JobStatus.COMPLETED

    # A bucket that is not there would make every completed job look lost: nothing is touched.
    monkeypatch.setenv("UPLOAD_JOBS_BUCKET", "no-such-bucket-for-reconcile")
    get_settings.cache_clear()
    code, output = invoke("reconcile")
    assert code == 1 and "NoSuchBucket" in output and "check UPLOAD_JOBS_BUCKET" in output
    assert jobs.store.get_job(stuck).status == JobStatus.COMPLETED
