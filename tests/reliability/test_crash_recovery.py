"""The flow process SIGKILLed after its upload finished but before the job was marked: the next
sweep finds the object by size and sha256 and marks the job without uploading it again (by
reconcile, before any re-run; with reconcile off, the re-run itself finds the object)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prefect.settings import get_current_settings

from flows.sweep import sweep_failed_uploads
from tests.conftest import one_database, sha256_of
from tests.support.bucket_audit import (
    one_job_outcome,
    store_writes_per_key,
    stored_objects,
    temp_files_left,
)
from tests.support.leases import expire_lease
from tests.support.s3_backends import S3Backend
from tests.support.s3_fault_proxy import S3FaultProxy
from upload_jobs.errors import ErrorKind
from upload_jobs.jobs.models import AttemptOutcome, JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server"), one_database]

# The verifying HEAD is held far longer than the test needs to see it and kill the run.
HOLD_SECONDS = 120.0


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `condition` until it is truthy; fail the test with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


@pytest.mark.parametrize("reconcile", [True, False], ids=["reconcile", "re-run"])
def test_run_killed_between_upload_and_mark_is_finished_without_a_second_upload(
    settings: Settings, clip: Callable[[str, str], Path], s3_server: S3Backend, reconcile: bool
) -> None:
    store = JobStore(settings.database_url)
    source = clip("moov_at_end", "killed after upload é.mp4")
    original = sha256_of(source)
    job = store.add_job(str(source), f"videos/{source.name}", JobStatus.FAILED)
    assert job.id is not None
    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        # The HEAD after the PUT verifies the new object: while it is held, the upload is done
        # and the job not yet marked.
        proxy.slow_next(1, HOLD_SECONDS, kinds={"head"}, after_kind="put_object")
        env = {
            **os.environ,
            "UPLOAD_JOBS_ENDPOINT_URL": proxy.endpoint_url,
            "PREFECT_API_URL": str(get_current_settings().api.url),
        }
        run = subprocess.Popen(
            [sys.executable, "-m", "upload_jobs.cli", "retry", str(job.id)],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: proxy.delayed, 120, "the upload to finish")
        finally:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=30)

    crashed = store.get_job(job.id)
    assert (crashed.status, run.returncode) == (JobStatus.IN_PROGRESS, -signal.SIGKILL)
    assert store_writes_per_key(s3_server, settings.bucket) == {job.object_key: 1}
    temp_after_crash = temp_files_left(settings)

    expire_lease(settings.database_url, job.id)  # the dead run's lease runs out
    report = sweep_failed_uploads(limit=10, stale_temp_hours=0, reconcile=reconcile)

    job = store.get_job(job.id)
    lost, *rerun = store.list_attempts(job.id)
    outcome = one_job_outcome(
        "flow process SIGKILLed after the upload, before the mark",
        settings=settings,
        server=s3_server,
        job=job,
        source=source,
        original_sha256=original,
        details={
            "temp_files_after_crash": temp_after_crash,
            "reconciled": report.reconciled,
            "attempts": [
                (a.outcome, a.error_kind, a.skipped_existing_object) for a in (lost, *rerun)
            ],
        },
    )
    outcome.save(f"flow-killed-before-mark-{'reconcile' if reconcile else 're-run'}")
    assert (lost.outcome, lost.error_kind) == (AttemptOutcome.FAILED, ErrorKind.WORKER_LOST)
    if reconcile:
        assert report.reaped == report.reconciled == [job.id] and report.picked == rerun == []
    else:
        assert report.reaped == report.completed == [job.id] and report.reconciled == []
        [finished] = rerun
        assert finished.outcome == AttemptOutcome.COMPLETED and finished.skipped_existing_object
    assert job.status == JobStatus.COMPLETED and job.optimized_for_streaming
    assert sorted(stored_objects(settings)) == [job.object_key]
    assert (outcome.objects_duplicated, outcome.parts_left) == (0, 0)
    assert (outcome.temp_files_left, outcome.sources_changed) == (0, 0)
