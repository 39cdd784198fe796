"""A run that ends early gives its job back: real `upload-jobs retry` processes and real signals
(Ctrl-C and SIGTERM during the remux and during a multipart upload), a cancelled served run, a
run SIGKILLed mid-upload (free again within a short lease, or at once on this machine), a run
slower than several leases that keeps its job, and the web process's local retries on shutdown.
Nothing is left in the bucket or the work dir in any case; the figures go to
test-artifacts/reliability/interruptions-*.json."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import get_current_settings
from prefect.states import Cancelling

from tests.conftest import one_database, sha256_of
from tests.support.bucket_audit import Outcome, kept_for_resume, open_parts, temp_files_left
from tests.support.leases import expire_lease
from tests.support.recordings import write_unfinished_recording
from tests.support.s3_backends import S3Backend
from tests.support.s3_fault_proxy import S3FaultProxy
from tests.support.settings_env import multipart_in_parts_of, set_env
from upload_jobs.errors import ErrorKind
from upload_jobs.jobs.models import AttemptOutcome, JobStatus, UploadJob, as_utc, utcnow
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server"), one_database]

REPO_ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
# Three parts of 5 MiB, one at a time, each held by the proxy: an upload that takes seconds.
MULTIPART = multipart_in_parts_of(5, concurrency=1)
PART_HOLD_SECONDS = 1.5
# ffmpeg reading its input at the video's own pace: the 2 s clip takes 2 s to remux.
PACED_FFMPEG = r"""#!/usr/bin/env bash
args=(); paced=""
for arg in "$@"; do
  if [ "$arg" = "-i" ] && [ -z "$paced" ]; then args+=(-re); paced=1; fi
  args+=("$arg")
done
exec "$REAL_FFMPEG" "${args[@]}"
"""


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `condition` until it is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def phase(store: JobStore, job_id: int) -> str | None:
    """What the job's latest attempt is doing (the live progress the page shows)."""
    attempts = store.list_attempts(job_id)
    return attempts[-1].phase if attempts else None


def retry_process(env: dict[str, str], job_id: int) -> subprocess.Popen[bytes]:
    """`upload-jobs retry JOB` as a process of its own, as a person runs it, Ctrl-C included
    (a test run started in the background would pass on an ignored SIGINT)."""
    return subprocess.Popen(
        [sys.executable, "-m", "upload_jobs.cli", "retry", str(job_id)],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


@pytest.fixture
def proxy(s3_server: S3Backend) -> Iterator[S3FaultProxy]:
    with S3FaultProxy(s3_server.endpoint_url) as fault_proxy:
        yield fault_proxy


@pytest.fixture
def run_env(settings: Settings, proxy: S3FaultProxy, tmp_path: Path) -> dict[str, str]:
    """The test's settings for a child process: through the proxy, on the session's server."""
    return {
        **os.environ,
        "UPLOAD_JOBS_ENDPOINT_URL": proxy.endpoint_url,
        "PREFECT_API_URL": str(get_current_settings().api.url),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
    }


def paced_ffmpeg(tmp_path: Path, settings: Settings) -> dict[str, str]:
    wrapper = tmp_path / "paced-ffmpeg"
    wrapper.write_text(PACED_FFMPEG)
    wrapper.chmod(0o755)
    from upload_jobs.media.remux import resolve_ffmpeg

    return {"UPLOAD_JOBS_FFMPEG": str(wrapper), "REAL_FFMPEG": resolve_ffmpeg(settings.ffmpeg)}


def assert_given_back(store: JobStore, job_id: int) -> UploadJob:
    """The job is failed, due now, its last attempt interrupted; nothing left behind."""
    job = store.get_job(job_id)
    assert (job.status, job.error_kind) == (JobStatus.FAILED, ErrorKind.INTERRUPTED), job
    assert job.lease_owner is None
    due = as_utc(job.next_attempt_at)
    assert due is not None and due <= utcnow()
    last = store.list_attempts(job_id)[-1]
    assert last.outcome == AttemptOutcome.INTERRUPTED and last.finished_at is not None
    assert "The run was" in (last.error or "")
    return job


@pytest.mark.parametrize(
    ("signum", "during"),
    [
        (signal.SIGINT, "optimizing"),
        (signal.SIGTERM, "optimizing"),
        (signal.SIGINT, "uploading"),
        (signal.SIGTERM, "uploading"),
    ],
    ids=["ctrl-c-remux", "sigterm-remux", "ctrl-c-upload", "sigterm-upload"],
)
def test_a_signal_gives_the_job_back_at_once_and_a_retry_completes_it(
    settings: Settings,
    run_env: dict[str, str],
    proxy: S3FaultProxy,
    clip: Callable[[str, str], Path],
    tmp_path: Path,
    signum: signal.Signals,
    during: str,
) -> None:
    store = JobStore(settings.database_url)
    if during == "optimizing":
        source = clip("mov_pcm", "remux.MOV")  # QuickTime with PCM: ffmpeg remuxes it
        env = run_env | paced_ffmpeg(tmp_path, settings)
    else:
        source = write_unfinished_recording(tmp_path / "videos" / "long take.mp4", 11 * MiB)
        env = run_env | MULTIPART
        proxy.slow_always(PART_HOLD_SECONDS, kinds={"upload_part"})
    original = sha256_of(source)
    job = store.add_job(str(source), f"videos/{source.name}", JobStatus.FAILED)
    job_id = job.id or 0

    run = retry_process(env, job_id)
    wait_for(lambda: phase(store, job_id) == during, 60, f"the run to be {during}")
    signalled = time.monotonic()
    os.kill(run.pid, signum)
    wait_for(lambda: store.get_job(job_id).status != JobStatus.IN_PROGRESS, 60, "the job back")
    released = time.monotonic() - signalled
    output, _ = run.communicate(timeout=60)
    exited = time.monotonic() - signalled

    said = output.decode(errors="replace")
    assert run.returncode == 130, said
    assert "Stopped (" in said and "given back" in said and "Traceback" not in said
    assert_given_back(store, job_id)
    assert temp_files_left(settings) == 0
    if during == "uploading":  # kept, and recorded, for the retry to resume
        assert kept_for_resume(settings, job_id)
    else:
        assert open_parts(settings) == 0

    proxy.clear_faults()
    proxy.reset_counts()
    again = subprocess.run(
        [sys.executable, "-m", "upload_jobs.cli", "retry", str(job_id)],
        env=run_env | MULTIPART,
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert store.get_job(job_id).status == JobStatus.COMPLETED
    parts_sent_again = proxy.count("upload_part")
    if during == "uploading":  # the part that landed first was not sent again
        assert parts_sent_again < 3 and store.list_attempts(job_id)[-1].multipart_upload_id
    Outcome(
        fault=f"{signal.Signals(signum).name} while {during}",
        jobs=1,
        completed=1,
        objects_duplicated=0,
        parts_left=open_parts(settings),
        temp_files_left=temp_files_left(settings),
        sources_changed=int(sha256_of(source) != original),
        details={
            "signal_to_job_free_seconds": round(released, 2),
            # The process then waits for the part in flight (held 1.5 s by the proxy) to end;
            # the job was free long before.
            "signal_to_exit_seconds": round(exited, 2),
            "exit_code": run.returncode,
            "parts_the_retry_sent_of_3": parts_sent_again,
        },
    ).save(f"interruptions-{signal.Signals(signum).name.lower()}-{during}")


def test_a_killed_run_frees_its_job_at_once_here_and_within_the_lease_elsewhere(
    settings: Settings,
    run_env: dict[str, str],
    proxy: S3FaultProxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = JobStore(settings.database_url)
    source = write_unfinished_recording(tmp_path / "videos" / "killed.mp4", 11 * MiB)
    job = store.add_job(str(source), "videos/killed.mp4", JobStatus.FAILED)
    job_id = job.id or 0
    lease = {"UPLOAD_JOBS_LEASE_SECONDS": "3", "UPLOAD_JOBS_LEASE_RENEW_SECONDS": "1"}
    proxy.slow_always(PART_HOLD_SECONDS, kinds={"upload_part"})
    run = retry_process(run_env | MULTIPART | lease, job_id)
    wait_for(lambda: phase(store, job_id) == "uploading", 60, "the upload to start")
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)
    assert store.get_job(job_id).status == JobStatus.IN_PROGRESS  # a dead run records nothing

    # On this machine the dead holder is seen as dead: `retry` takes the job back at once.
    proxy.clear_faults()
    killed = time.monotonic()
    again = subprocess.run(
        [sys.executable, "-m", "upload_jobs.cli", "retry", str(job_id)],
        env=run_env | MULTIPART | lease,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"Upload job {job_id}: taken back: the process that held it (pid {run.pid}" in (
        " ".join(again.stderr.split())
    )
    retried_after = time.monotonic() - killed
    attempts = store.list_attempts(job_id)
    assert attempts[0].error_kind == ErrorKind.WORKER_LOST and "Taken back" in (
        attempts[0].error or ""
    )
    assert store.get_job(job_id).status == JobStatus.COMPLETED
    # The dead run had recorded its multipart upload: the retry resumed and completed it.
    assert open_parts(settings) == 0
    assert attempts[-1].multipart_upload_id == attempts[0].multipart_upload_id
    assert temp_files_left(settings) == 0

    # A holder on another machine is not: its job is free once its lease has run out. (A lease
    # long enough to outlast a slow `retry` start on a busy machine, then run out by hand.)
    other = store.add_job(str(source), "videos/killed-elsewhere.mp4", JobStatus.FAILED)
    store.claim_job(other.id or 0, "another-host:4242:run", timedelta(seconds=120))
    held = subprocess.run(
        [sys.executable, "-m", "upload_jobs.cli", "retry", str(other.id)],
        env=run_env | lease, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert held.returncode == 1 and "already in progress (held by another-host" in held.stderr
    lease_out = time.monotonic()
    expire_lease(settings.database_url, other.id or 0)
    freed = subprocess.run(
        [sys.executable, "-m", "upload_jobs.cli", "retry", str(other.id)],
        env=run_env | lease, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert freed.returncode == 0, freed.stdout + freed.stderr
    assert "its lease ran out" in " ".join(freed.stderr.split())
    Outcome(
        fault="run SIGKILLed mid-upload",
        jobs=2,
        completed=2,
        objects_duplicated=0,
        parts_left=open_parts(settings),
        temp_files_left=temp_files_left(settings),
        sources_changed=0,
        details={
            # Free at once (the retry's first step takes it back); the figure is the whole
            # retry, started right after the kill, until the job was completed.
            "same_host_retried_and_completed_seconds": round(retried_after, 2),
            "other_host_free_after_its_lease_seconds": round(time.monotonic() - lease_out, 2),
            "lease_seconds": 3,
        },
    ).save("interruptions-sigkill")


def test_a_run_slower_than_several_leases_keeps_its_job(
    settings: Settings,
    run_env: dict[str, str],
    proxy: S3FaultProxy,
    tmp_path: Path,
) -> None:
    store = JobStore(settings.database_url)
    source = write_unfinished_recording(tmp_path / "videos" / "slow.mp4", 11 * MiB)
    job = store.add_job(str(source), "videos/slow.mp4", JobStatus.FAILED)
    job_id = job.id or 0
    lease = {"UPLOAD_JOBS_LEASE_SECONDS": "1.5", "UPLOAD_JOBS_LEASE_RENEW_SECONDS": "0.3"}
    proxy.slow_always(PART_HOLD_SECONDS, kinds={"upload_part"})  # 4.5 s of parts: 3 leases
    run = retry_process(run_env | MULTIPART | lease, job_id)
    wait_for(lambda: phase(store, job_id) == "uploading", 60, "the upload to start")
    reaped, answers, reaps = [], [], 0
    other: subprocess.Popen[str] | None = None
    # Reap every 0.1 s all along, and ask for a retry from the CLI one after another: a CLI
    # start takes seconds on a loaded machine, the reaper must not wait for it.
    while run.poll() is None:
        reaped += store.reap_expired_leases()
        reaps += 1
        if other is not None and other.poll() is not None:
            answers.append("".join(other.communicate()))
            other = None
        if other is None:
            other = subprocess.Popen(
                [sys.executable, "-m", "upload_jobs.cli", "retry", str(job_id)],
                env=run_env | lease, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
        time.sleep(0.1)
    if other is not None:
        answers.append("".join(other.communicate(timeout=60)))
    assert run.returncode == 0, run.stdout.read() if run.stdout else ""
    # Nobody took the job while it ran: never reaped, every other retry refused, one attempt.
    assert reaped == [] and reaps >= 10  # reaped all through 3 leases' time
    assert sum("already in progress" in answer for answer in answers) >= 1, answers
    assert all("already in progress" in a or "already completed" in a for a in answers), answers
    assert store.get_job(job_id).status == JobStatus.COMPLETED
    assert [a.outcome for a in store.list_attempts(job_id)] == [AttemptOutcome.COMPLETED]


@pytest.fixture
def slow_uploads(
    settings: Settings, proxy: S3FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> S3FaultProxy:
    """This process and those it starts upload in parts through the proxy, which holds each."""
    set_env(monkeypatch, {**MULTIPART, "UPLOAD_JOBS_ENDPOINT_URL": proxy.endpoint_url})
    proxy.slow_always(PART_HOLD_SECONDS, kinds={"upload_part"})
    return proxy


def test_a_cancelled_served_run_gives_its_job_back(
    settings: Settings, slow_uploads: S3FaultProxy, served: object, tmp_path: Path
) -> None:
    from deployments.trigger import start_retry

    store = JobStore(settings.database_url)
    source = write_unfinished_recording(tmp_path / "videos" / "cancelled.mp4", 11 * MiB)
    job = store.add_job(str(source), "videos/cancelled.mp4", JobStatus.FAILED)
    job_id = job.id or 0

    flow_run = start_retry(job_id)
    wait_for(lambda: phase(store, job_id) == "uploading", 120, "the served run to upload")
    cancelled = time.monotonic()
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run.id, Cancelling(), force=True)
    wait_for(lambda: store.get_job(job_id).status != JobStatus.IN_PROGRESS, 60, "the job back")
    given_back_after = time.monotonic() - cancelled

    assert_given_back(store, job_id)
    assert kept_for_resume(settings, job_id)
    assert temp_files_left(settings) == 0
    Outcome(
        fault="served run cancelled through the Prefect API",
        jobs=1,
        completed=0,
        objects_duplicated=0,
        parts_left=open_parts(settings),
        temp_files_left=temp_files_left(settings),
        sources_changed=0,
        details={"cancel_to_job_free_seconds": round(given_back_after, 2)},
    ).save("interruptions-cancelled")


def test_the_web_process_shutting_down_gives_its_running_retries_back(
    settings: Settings, slow_uploads: S3FaultProxy, tmp_path: Path
) -> None:
    from upload_jobs.web.retries import LocalRetryQueue

    store = JobStore(settings.database_url)
    source = write_unfinished_recording(tmp_path / "videos" / "page.mp4", 11 * MiB)
    job = store.add_job(str(source), "videos/page.mp4", JobStatus.FAILED)
    job_id = job.id or 0
    queue = LocalRetryQueue(1)
    queue.submit(job)
    wait_for(lambda: phase(store, job_id) == "uploading", 60, "the page's retry to upload")

    queue.close()

    assert_given_back(store, job_id)
    assert kept_for_resume(settings, job_id) and temp_files_left(settings) == 0
