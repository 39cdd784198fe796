"""Exactly once, proven on real process workers: a Prefect server (on PostgreSQL, see
conftest.py), `prefect worker start` subprocesses polling `video-uploads`, moto's S3 over HTTP,
and the job database: SQLite, and PostgreSQL (both, since the server needs
`UPLOAD_JOBS_TEST_POSTGRES_URL` anyway).

Run with `pytest -s tests/integration` to see the measured figures.
"""

from __future__ import annotations

import contextvars
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from uuid import UUID

import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from deployments import RETRY_DEPLOYMENT
from flows.sweep import sweep_failed_uploads
from tests.conftest import one_database
from tests.integration.conftest import (
    WORKER_LIMIT,
    ManagedProcess,
    StartWorker,
    wait_until_polling,
)
from tests.support.bucket_audit import store_writes_per_key
from tests.support.prefect_runs import runs_of
from tests.support.recordings import write_unfinished_recording
from tests.support.s3_backends import S3Backend
from tests.support.s3_fault_proxy import S3FaultProxy
from tests.support.settings_env import multipart_in_parts_of, set_env
from upload_jobs.jobs.models import AttemptOutcome, JobStatus, as_utc
from upload_jobs.jobs.store import JobStore
from upload_jobs.jobs.sweeping import SweepMode, SweepReport
from upload_jobs.settings import Settings, get_settings
from upload_jobs.storage.spaces import file_sha256, list_open_multipart_uploads, make_s3_client

# What these test (workers and triggers) does not depend on S3: moto only.
pytestmark = [
    pytest.mark.flow,
    pytest.mark.usefixtures("prefect_api"),
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="worker process trees come from /proc"
    ),
    pytest.mark.moto_only,
]

T = TypeVar("T")

JOB_COUNT = 16  # more than both workers run at once (2 x WORKER_LIMIT): they contend
# Failure bounds only: on an idle 2-core machine the 30 runs take about 90 s (each run is a
# fresh interpreter importing Prefect and the flow, ~5 CPU-s).
ALL_COMPLETED_TIMEOUT = 300.0
SWEEP_TIMEOUT = 120.0
RUNS_FINAL_TIMEOUT = 60.0
UPLOAD_IN_FLIGHT_TIMEOUT = 90.0
POLL_SECONDS = 0.25

MiB = 1024 * 1024
LEASE_SECONDS = 5
# Longer than the test needs to see the part and kill the worker; the proxy drops held parts
# when it stops, so they never reach the server after the kill.
UPLOAD_PART_HOLD_SECONDS = 60.0
BIG_SOURCE_BYTES = 12 * MiB
# Multipart from 5 MiB, in 5 MiB parts: the worker's run and the sweep's retry alike.
PARTS_OF_5_MIB = multipart_in_parts_of(5)


def add_failed_job(store: JobStore, source: Path) -> int:
    """A job whose upload failed before (attempts 0), for a sweep to pick up."""
    job = store.add_job(
        str(source), f"videos/{source.name}", status=JobStatus.FAILED, last_error="reset"
    )
    assert job.id is not None
    return job.id


def wait_for(
    condition: Callable[[], T | None],
    timeout: float,
    what: str,
    workers: list[ManagedProcess],
) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds saying
    `what` did not happen, with the end of every worker's log."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {w.name} ---\n{w.log_tail()}" for w in workers)
            pytest.fail(f"{what}: not within {timeout:.0f} s\n{logs}", pytrace=False)
        time.sleep(POLL_SECONDS)


def all_completed(store: JobStore, job_ids: list[int]) -> bool:
    """Whether every job completed; raises at once when one failed in a run (attempts > 0),
    rather than waiting for the timeout. One query per poll: this runs every 0.25 s beside
    the workers, on the same two cores."""
    wanted = set(job_ids)
    jobs = [job for job in store.list_jobs(limit=len(wanted) + 100) if job.id in wanted]
    assert len(jobs) == len(wanted), "every job is in the test's database"
    broken = [job for job in jobs if job.status == JobStatus.FAILED and job.attempts > 0]
    assert not broken, "jobs failed on the workers: " + "; ".join(
        f"{job.id}: [{job.error_kind}] {job.last_error}" for job in broken
    )
    return all(job.status == JobStatus.COMPLETED for job in jobs)


def run_at_once(calls: list[Callable[[], T]], timeout: float) -> list[T]:
    """Run the calls in threads released together by a barrier; their results, in order.

    Each thread runs in a copy of this context, as a flow called from a thread needs.
    """
    barrier = threading.Barrier(len(calls))
    results: dict[int, T] = {}
    errors: dict[int, BaseException] = {}

    def run(index: int, call: Callable[[], T]) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except BaseException as exc:  # re-raised in the test thread below
            errors[index] = exc

    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(run, index, call))
        for index, call in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), f"still running after {timeout} s"
    if errors:
        raise next(iter(errors.values()))
    return [results[index] for index in range(len(calls))]


def final_runs(deployment_id: UUID, count: int) -> list[FlowRun] | None:
    """The deployment's flow runs once `count` exist and all reached a final state, else None."""
    runs = runs_of(deployment_id)
    if len(runs) < count or not all(run.state is not None and run.state.is_final() for run in runs):
        return None
    return runs


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """`end - start` in seconds, or None when either is unknown."""
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def median_of(values: list[float | None]) -> str:
    """The median of the known values, printed with two decimals."""
    known = [value for value in values if value is not None]
    return f"{statistics.median(known):.2f} s" if known else "n/a"


# One job database is enough here: the claim's SQL is the store tests' subject, on both.
@one_database
def test_two_sweeps_over_two_workers_upload_each_job_exactly_once(
    settings: Settings,
    clip: Callable[[str, str], Path],
    s3_server: S3Backend,
    start_worker: StartWorker,
    fresh_runs: UUID,
) -> None:
    store = JobStore(settings.database_url)
    job_ids = [
        add_failed_job(store, clip("faststart", f"once/{n:02d}.mp4")) for n in range(JOB_COUNT)
    ]
    workers = [start_worker(), start_worker()]
    wait_until_polling(workers)

    def sweep() -> SweepReport:
        return sweep_failed_uploads(mode=SweepMode.DISTRIBUTED, limit=50)

    started = time.monotonic()
    reports = run_at_once([sweep, sweep], timeout=SWEEP_TIMEOUT)
    sweeps_done = time.monotonic()
    wait_for(
        lambda: all_completed(store, job_ids),
        ALL_COMPLETED_TIMEOUT,
        "every job completed",
        workers,
    )
    all_done = time.monotonic()

    # Whichever sweep picked first saw every job failed; the other may have found some
    # already claimed. Between them they started one flow run per job, and where both
    # started one for the same job attempt, the idempotency key gave them the same run.
    run_for_job: dict[int, str] = {}
    for report in reports:
        assert report.stopped_early is None
        for job_id, run_id in report.flow_runs_started.items():
            assert run_for_job.setdefault(job_id, run_id) == run_id, f"job {job_id}: two runs"
    assert sorted(run_for_job) == sorted(job_ids)
    assert len(set(run_for_job.values())) == JOB_COUNT

    for job_id in job_ids:
        job = store.get_job(job_id)
        assert (job.status, job.attempts) == (JobStatus.COMPLETED, 1), f"job {job_id}"
        [attempt] = store.list_attempts(job_id)
        assert attempt.outcome == AttemptOutcome.COMPLETED
        assert attempt.flow_run_id == run_for_job[job_id], "claimed by the run the sweep started"
        assert attempt.skipped_existing_object is False

    uploads = store_writes_per_key(s3_server, settings.bucket)
    assert sum(uploads.values()) == JOB_COUNT
    assert uploads == Counter(store.get_job(job_id).object_key for job_id in job_ids)

    # No third run anywhere: the server holds exactly the runs the sweeps reported, and every
    # one of them completed (a duplicate run would have failed its claim).
    runs = wait_for(
        lambda: final_runs(fresh_runs, JOB_COUNT),
        RUNS_FINAL_TIMEOUT,
        "every flow run of the deployment reached a final state",
        workers,
    )
    assert {str(run.id) for run in runs} == set(run_for_job.values())
    assert Counter(run.state_name for run in runs) == {"Completed": JOB_COUNT}
    share = Counter(run.labels.get("prefect.worker.name") for run in runs)
    # 30 runs and at most 4 at a time per worker: both workers must have taken part.
    assert set(share) == {worker.name for worker in workers}

    print(
        f"\n[exactly once, {store_kind(settings)}] {JOB_COUNT} jobs, "
        f"2 workers x limit {WORKER_LIMIT}, 2 distributed sweeps at once\n"
        f"  sweeps returned after {sweeps_done - started:.1f} s; all jobs completed "
        f"{all_done - started:.1f} s after the sweeps started\n"
        f"  flow runs: {len(runs)} (sweep A started {len(reports[0].flow_runs_started)}, "
        f"sweep B {len(reports[1].flow_runs_started)}, distinct {len(set(run_for_job.values()))})"
        f"\n  per worker: {dict(sorted(share.items(), key=lambda item: str(item[0])))}\n"
        f"  median created -> running: "
        f"{median_of([seconds_between(run.created, run.start_time) for run in runs])}, "
        f"median run time: {median_of([run.total_run_time.total_seconds() for run in runs])}\n"
        f"  S3 uploads in the bucket: {sum(uploads.values())} "
        f"(put_object + complete_multipart), attempt rows: {JOB_COUNT}"
    )


def test_worker_killed_mid_upload_is_recovered_by_the_next_sweep(
    settings: Settings,
    s3_server: S3Backend,
    start_worker: StartWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A recording never finalized: the remux fails and the run falls back to the original, large
    # enough for a multipart upload with the worker's 5 MiB threshold.
    source = tmp_path / "videos" / "big.mp4"
    source.parent.mkdir(parents=True)
    write_unfinished_recording(source, BIG_SOURCE_BYTES)
    store = JobStore(settings.database_url)
    job_id = add_failed_job(store, source)
    key = store.get_job(job_id).object_key
    s3 = make_s3_client(settings)

    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        proxy.slow_always(UPLOAD_PART_HOLD_SECONDS, kinds={"upload_part"})
        worker = start_worker(
            {
                "UPLOAD_JOBS_ENDPOINT_URL": proxy.endpoint_url,
                "UPLOAD_JOBS_LEASE_SECONDS": str(LEASE_SECONDS),
                **PARTS_OF_5_MIB,
            }
        )
        triggered = time.monotonic()
        flow_run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync: not a coroutine
            RETRY_DEPLOYMENT, parameters={"job_id": job_id}, timeout=0
        )
        wait_for(
            lambda: any(r.key == key for r in proxy.delayed),
            UPLOAD_IN_FLIGHT_TIMEOUT,
            "the worker's upload reaching upload_part",
            [worker],
        )
        in_flight = time.monotonic()
        killed = worker.kill_tree()

        # The kill landed mid-upload: the job is held, its multipart upload open, no object.
        assert len(killed) > 1, "the flow run's own processes were killed along with the worker"
        job = store.get_job(job_id)
        assert (job.status, job.attempts) == (JobStatus.IN_PROGRESS, 1)
        [attempt] = store.list_attempts(job_id)
        assert (attempt.outcome, attempt.flow_run_id) == (AttemptOutcome.RUNNING, str(flow_run.id))
        assert [u["Key"] for u in list_open_multipart_uploads(s3, settings.bucket)] == [key]
        assert store_writes_per_key(s3_server, settings.bucket)[key] == 0
    # Stopping the proxy dropped the held parts: nothing of the killed run reaches S3 any more.

    lease_expires_at = as_utc(job.lease_expires_at)
    assert lease_expires_at is not None
    # A sweep before this instant would rightly leave the job alone: the lease still holds.
    time.sleep(max(0.0, (lease_expires_at - datetime.now(UTC)).total_seconds() + 0.5))

    # The sweep's retry sends the same bytes in the same parts: it resumes the killed run's
    # multipart upload (recorded before its first part) instead of aborting it.
    set_env(monkeypatch, PARTS_OF_5_MIB)
    swept = time.monotonic()
    report = sweep_failed_uploads(mode=SweepMode.LOCAL, stale_multipart_hours=0)
    recovered = time.monotonic()
    get_settings.cache_clear()

    assert report.reaped == [job_id]
    assert report.completed == [job_id] and report.failed == []
    assert report.aborted_multipart_uploads == 0
    job = store.get_job(job_id)
    assert (job.status, job.attempts, job.error_kind) == (JobStatus.COMPLETED, 2, None)
    first, second = store.list_attempts(job_id)
    assert (first.outcome, first.error_kind) == (AttemptOutcome.FAILED, "worker_lost")
    assert second.outcome == AttemptOutcome.COMPLETED
    assert first.multipart_upload_id is not None
    assert second.multipart_upload_id == first.multipart_upload_id
    assert list_open_multipart_uploads(s3, settings.bucket) == []
    head = s3.head_object(Bucket=settings.bucket, Key=key)
    assert head["ContentLength"] == BIG_SOURCE_BYTES
    assert head["Metadata"]["sha256"] == file_sha256(source)
    assert store_writes_per_key(s3_server, settings.bucket)[key] == 1

    print(
        f"\n[worker killed, {store_kind(settings)}] 12 MiB multipart upload, lease "
        f"{LEASE_SECONDS} s\n"
        f"  trigger -> upload_part in flight: {in_flight - triggered:.1f} s; killed "
        f"{len(killed)} processes (worker + flow run)\n"
        f"  local sweep after the lease expired: {recovered - swept:.1f} s (reaped "
        f"{report.reaped}, completed {report.completed}, aborted "
        f"{report.aborted_multipart_uploads} multipart upload, resumed {first.multipart_upload_id})"
    )


def store_kind(settings: Settings) -> str:
    """`sqlite` or `postgresql`: which job database this parametrization runs on."""
    return settings.database_url.split(":", 1)[0].split("+", 1)[0]
