"""A flaky S3 endpoint: 30 jobs through a proxy that breaks 20 % of the requests end completed,
each object stored once, no multipart upload left open, no temp file left, no source changed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flows.sweep import sweep_failed_uploads
from tests.conftest import one_database, sha256_of
from tests.support.bucket_audit import (
    Outcome,
    make_failed_jobs_due,
    open_parts,
    sources_changed,
    store_writes_per_key,
    stored_objects,
    temp_files_left,
)
from tests.support.fault_rules import Fault
from tests.support.recordings import write_unfinished_recording
from tests.support.s3_backends import S3Backend
from tests.support.s3_fault_proxy import S3FaultProxy
from tests.support.settings_env import multipart_in_parts_of, set_env
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings, get_settings
from upload_jobs.storage.spaces import MiB

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_server"), one_database]

FAULT_SHARE = 0.2
SMALL_VIDEOS = 24
LARGE_RECORDINGS = 6  # 11 MiB with a 5 MiB threshold: three parts each
MAX_SWEEPS = 2
# Names a recording pipeline really leaves: spaces, unicode, upper-case and look-alike suffixes.
NAME_STYLES = ["clip {n}.mp4", "Camera é {n}.MP4", "x.mp4s/clip-{n}.mp4", "talk_{n}.mov"]


def test_thirty_jobs_survive_a_fifth_of_requests_failing(
    settings: Settings,
    clip: Callable[[str, str], Path],
    s3_server: S3Backend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = JobStore(settings.database_url)
    sources = [clip("moov_at_end", NAME_STYLES[n % 4].format(n=n)) for n in range(SMALL_VIDEOS)]
    sources += [
        write_unfinished_recording(tmp_path / "videos" / f"long {n}.mp4", 11 * MiB)
        for n in range(LARGE_RECORDINGS)
    ]
    originals = {path: sha256_of(path) for path in sources}
    jobs = {
        store.add_job(str(path), f"videos/{n:02d}/{path.name}", JobStatus.FAILED).id: path
        for n, path in enumerate(sources)
    }
    set_env(monkeypatch, multipart_in_parts_of(5, concurrency=2))

    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        mix = proxy.fail_randomly(FAULT_SHARE, seed=20261124, slow_seconds=1.0)
        monkeypatch.setenv("UPLOAD_JOBS_ENDPOINT_URL", proxy.endpoint_url)
        get_settings.cache_clear()
        reports = []
        while len(reports) < MAX_SWEEPS and store.count_jobs_by_status().get("failed"):
            make_failed_jobs_due(settings.database_url)
            reports.append(sweep_failed_uploads(limit=50, concurrency=2))
        requests_seen, faulted = len(proxy.requests), len(proxy.faulted) + len(proxy.delayed)

    statuses = {job_id: store.get_job(job_id).status for job_id in jobs}
    assert set(statuses.values()) == {JobStatus.COMPLETED}, store.count_jobs_by_status()
    # Faults of every kind were really injected, at about the share asked for.
    assert set(mix.drawn) == set(Fault), mix.drawn
    assert 0.1 < faulted / requests_seen < 0.3, (faulted, requests_seen)
    objects = stored_objects(settings)
    assert sorted(objects) == sorted(store.get_job(job_id).object_key for job_id in jobs)
    for job_id in jobs:
        job = store.get_job(job_id)
        assert objects[job.object_key] == job.uploaded_size_bytes
    writes = store_writes_per_key(s3_server, settings.bucket)
    duplicated = sum(count - 1 for count in writes.values())
    outcome = Outcome(
        fault=f"{FAULT_SHARE:.0%} of S3 requests: " + ", ".join(f.value for f in Fault),
        jobs=len(jobs),
        completed=sum(status == JobStatus.COMPLETED for status in statuses.values()),
        objects_duplicated=duplicated,
        parts_left=open_parts(settings),
        temp_files_left=temp_files_left(settings),
        sources_changed=sources_changed(originals),
        details={
            "sweeps": len(reports),
            "completed_per_sweep": [len(report.completed) for report in reports],
            "requests": requests_seen,
            "faults_injected": {fault.value: count for fault, count in mix.drawn.items()},
            "attempt_rows": sum(len(store.list_attempts(job_id)) for job_id in jobs),
            "optimized": sum(
                bool(store.get_job(job_id).optimized_for_streaming) for job_id in jobs
            ),
        },
    )
    outcome.save("s3-faults")
    assert (outcome.objects_duplicated, outcome.parts_left) == (0, 0)
    assert (outcome.temp_files_left, outcome.sources_changed) == (0, 0)
    assert outcome.details["optimized"] == SMALL_VIDEOS
