"""The jobs page's JSON API through FastAPI's TestClient: pages, details, retries, refusals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from tests.flows.test_retry_flow import fault_proxy, media_and_s3_only  # noqa: F401
from tests.support.recordings import write_unfinished_recording
from tests.support.s3_fault_proxy import S3FaultProxy
from tests.support.settings_env import multipart_in_parts_of, set_env
from tests.support.web_app import LOOPBACK_HEADERS, HeldRetryQueue, web_client
from upload_jobs.errors import ErrorKind
from upload_jobs.jobs.attempt_report import AttemptReport, StoredObject
from upload_jobs.jobs.claims import new_lease_owner
from upload_jobs.jobs.database import session_for
from upload_jobs.jobs.models import JobStatus, UploadJob, utcnow
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings
from upload_jobs.web.retries import LocalRetryQueue

# What these test (the page and its API) does not depend on S3: moto only.
pytestmark = pytest.mark.moto_only

MiB = 1024 * 1024
PREFECT_UI = "http://prefect.test:4200"


def add_jobs(database_url: str, count: int) -> None:
    """`count` jobs in one statement: clip-00000.mp4 (oldest) ... , every 4th failed."""
    now = utcnow()
    rows = [
        {
            "source_path": f"/recordings/clip-{n:05d}.mp4",
            "object_key": f"videos/clip-{n:05d}.mp4",
            "status": JobStatus.FAILED if n % 4 == 0 else JobStatus.COMPLETED,
            "attempts": 1,
            "optimized_for_streaming": n % 4 != 0,
            "created_at": now,
            "updated_at": now,
        }
        for n in range(count)
    ]
    with session_for(database_url) as session:
        session.connection().execute(insert(UploadJob), rows)
        session.commit()


def get_ok(client: TestClient, url: str, **params: Any) -> Any:
    response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_ten_thousand_jobs_page_filter_and_search(settings: Settings) -> None:
    add_jobs(settings.database_url, 10_000)
    with web_client(HeldRetryQueue()) as client:
        first = get_ok(client, "/api/jobs")
        assert (first["total"], first["pages"], first["per_page"]) == (10_000, 200, 50)
        assert first["counts"] == {
            "pending": 0,
            "in_progress": 0,
            "completed": 7_500,
            "failed": 2_500,
        }
        assert [job["id"] for job in first["jobs"]] == list(range(10_000, 9_950, -1))
        last = get_ok(client, "/api/jobs", page=200)
        assert last["jobs"][-1]["file_name"] == "clip-00000.mp4"

        failed = get_ok(client, "/api/jobs", status="failed", per_page=500, page=5)
        assert failed["total"] == 2_500 and len(failed["jobs"]) == 500
        assert {job["status"] for job in failed["jobs"]} == {"failed"}

        found = get_ok(client, "/api/jobs", q="CLIP-0999")  # case-insensitive, part of a name
        assert sorted(job["file_name"] for job in found["jobs"]) == [
            f"clip-0999{n}.mp4" for n in range(10)
        ]
        # % and _ are searched for literally, not as SQL wildcards.
        assert get_ok(client, "/api/jobs", q="clip_0")["total"] == 0
        assert get_ok(client, "/api/jobs", q="%")["total"] == 0

        beyond = get_ok(client, "/api/jobs", page=999)
        assert beyond["jobs"] == [] and beyond["total"] == 10_000
        for bad in ({"per_page": 501}, {"page": 0}, {"status": "done"}, {"q": "x" * 201}):
            response = client.get("/api/jobs", params=bad)
            assert response.status_code == 422, bad
            assert response.json()["detail"].startswith("Invalid request: query ")


def test_job_detail_has_every_attempt_with_flow_run_links(settings: Settings) -> None:
    store = JobStore(settings.database_url)
    job = store.add_job("/recordings/clip.mp4", "videos/clip.mp4", status=JobStatus.FAILED)
    assert job.id is not None
    lease = timedelta(minutes=5)
    first = store.claim_job(job.id, new_lease_owner(), lease, flow_run_id="run-one")
    store.mark_failed(
        first, AttemptReport(preset="faststart"), "SlowDown", ErrorKind.UPLOAD_TRANSIENT
    )
    second = store.claim_job(job.id, new_lease_owner(), lease, flow_run_id="run-two")
    report = AttemptReport(preset="faststart", optimized=True, uploaded_size_bytes=10)
    report.step_seconds = {"check_source_file": 0.01, "upload_to_spaces": 0.5}
    store.mark_completed(second, report, StoredObject("https://cdn.test/videos/clip.mp4", "e"))

    with web_client(HeldRetryQueue(), prefect_ui_url=PREFECT_UI) as client:
        detail = get_ok(client, f"/api/jobs/{job.id}")
    assert detail["status"] == "completed" and detail["optimized"] is True
    assert detail["public_url"] == "https://cdn.test/videos/clip.mp4"
    assert detail["flow_run_url"] == f"{PREFECT_UI}/runs/flow-run/run-two"
    assert [a["outcome"] for a in detail["attempt_history"]] == ["failed", "completed"]
    failed, completed = detail["attempt_history"]
    assert (failed["error"], failed["error_kind"]) == ("SlowDown", "upload_transient")
    assert failed["flow_run_url"] == f"{PREFECT_UI}/runs/flow-run/run-one"
    assert completed["step_seconds"] == {"check_source_file": 0.01, "upload_to_spaces": 0.5}


def test_retry_refusals_say_why_with_the_right_status(
    settings: Settings, clip: Callable[[str, str], Path], tmp_path: Path
) -> None:
    store = JobStore(settings.database_url)
    failed = store.add_job(str(clip("faststart", "ok.mp4")), "videos/ok.mp4", JobStatus.FAILED)
    running = store.add_job(str(clip("faststart", "run.mp4")), "videos/run.mp4")
    store.claim_job(running.id or 0, new_lease_owner(), timedelta(minutes=5))
    done = store.add_job(str(clip("faststart", "done.mp4")), "videos/done.mp4", JobStatus.COMPLETED)
    missing = store.add_job(str(tmp_path / "gone.mp4"), "videos/gone.mp4", JobStatus.FAILED)
    (tmp_path / "empty.mp4").write_bytes(b"")
    empty = store.add_job(str(tmp_path / "empty.mp4"), "videos/empty.mp4", JobStatus.FAILED)
    queue = HeldRetryQueue()

    with web_client(queue) as client:

        def retry(job_id: int | str) -> tuple[int, dict[str, Any]]:
            response = client.post(f"/api/jobs/{job_id}/retry", headers=LOOPBACK_HEADERS)
            return response.status_code, response.json()

        code, body = retry(failed.id or 0)
        assert code == 202 and body["mode"] == "local"
        assert (
            body["message"]
            == f"Upload job {failed.id} queued for retry with streaming optimization"
        )
        assert queue.started == [failed.id]
        listed = get_ok(client, f"/api/jobs/{failed.id}")
        assert listed["queued"] is True and listed["status"] == "failed"

        expected = {
            failed.id: (409, "job_not_claimable", f"Upload job {failed.id} is already queued"),
            running.id: (409, "job_not_claimable", "is already in progress"),
            done.id: (409, "job_not_claimable", "is already completed"),
            missing.id: (422, "source_missing", f"Original video file not found: {tmp_path}"),
            empty.id: (422, "source_empty", "Original video file is empty (0 bytes)"),
            424242: (404, "job_not_found", "Upload job 424242 not found"),
        }
        for job_id, (status_code, kind, words) in expected.items():
            code, body = retry(job_id or 0)
            assert (code, body["error_kind"]) == (status_code, kind), body
            assert words in body["detail"]
        assert queue.started == [failed.id], "no refused retry was started"
        for bad_id in ("0", str(2**31)):
            code, body = retry(bad_id)
            assert code == 422 and body["detail"].startswith("Invalid request: path job_id")
        for not_an_id in ("abc", "-1"):  # no such route: ids are numbers
            code, body = retry(not_an_id)
            assert code == 404 and body["detail"] == "No such page or API route"
        assert client.get("/api/jobs/424242").status_code == 404


def test_retry_all_failed_queues_ready_jobs_and_skips_missing_sources(
    settings: Settings, clip: Callable[[str, str], Path], tmp_path: Path
) -> None:
    store = JobStore(settings.database_url)
    ready = [
        store.add_job(str(clip("faststart", f"{n}.mp4")), f"videos/{n}.mp4", JobStatus.FAILED).id
        for n in range(3)
    ]
    gone = store.add_job(str(tmp_path / "gone.mp4"), "videos/gone.mp4", JobStatus.FAILED).id
    store.add_job(str(clip("faststart", "done.mp4")), "videos/done.mp4", JobStatus.COMPLETED)
    queue = HeldRetryQueue()
    with web_client(queue) as client:
        response = client.post("/api/jobs/retry-failed", headers=LOOPBACK_HEADERS)
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["queued"] == 3 and body["job_ids"] == ready == queue.started
        assert [s["id"] for s in body["skipped"]] == [gone]
        assert "Original video file not found" in body["skipped"][0]["reason"]
        assert body["message"] == "3 failed upload jobs queued for retry; 1 skipped"
        again = client.post("/api/jobs/retry-failed", headers=LOOPBACK_HEADERS).json()
        assert again["queued"] == 0 and len(again["skipped"]) == 4  # 3 queued + 1 missing


def test_openapi_documents_every_endpoint_and_refusal(settings: Settings) -> None:
    with web_client(HeldRetryQueue()) as client:
        spec = get_ok(client, "/openapi.json")
        assert client.get("/docs").status_code == 200
    paths = spec["paths"]
    assert set(paths) == {
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/retry",
        "/api/jobs/retry-failed",
        "/api/stats",
    }
    assert "StreamingStats" in spec["components"]["schemas"]
    assert {"202", "404", "409", "422", "503"} <= set(
        paths["/api/jobs/{job_id}/retry"]["post"]["responses"]
    )
    assert "202" in paths["/api/jobs/retry-failed"]["post"]["responses"]


async def _progress_artifacts(flow_run_id: str) -> dict[str | None, Any]:
    """The progress artifacts of one flow run (job ids, hence keys, repeat across tests)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {artifact.key: artifact.data for artifact in artifacts if artifact.type == "progress"}


def wait_for_status(
    client: TestClient, job_id: int, status: str, seconds: float = 90
) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        job = get_ok(client, f"/api/jobs/{job_id}")
        if job["status"] == status:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}: {job}"
        time.sleep(0.2)


@media_and_s3_only
@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_retry_runs_the_flow_in_the_web_process_and_records_progress(
    settings: Settings, clip: Callable[[str, str], Path]
) -> None:
    store = JobStore(settings.database_url)
    # QuickTime with PCM: ffmpeg remuxes it, with progress (the in-process move has none).
    source = clip("mov_pcm", "web/Camera Roll é.MOV")
    job = store.add_job(str(source), "videos/Camera Roll é.mp4", JobStatus.FAILED)
    assert job.id is not None
    with web_client(LocalRetryQueue(workers=2), prefect_ui_url=PREFECT_UI) as client:
        response = client.post(f"/api/jobs/{job.id}/retry", headers=LOOPBACK_HEADERS)
        assert response.status_code == 202, response.text
        done = wait_for_status(client, job.id, "completed")
    assert done["optimized"] is True and done["queued"] is False and done["progress"] is None
    [attempt] = store.list_attempts(job.id)
    assert done["flow_run_url"] == f"{PREFECT_UI}/runs/flow-run/{attempt.flow_run_id}"
    # The flow wrote its last reading to the job store and to the Prefect UI's artifacts.
    assert (attempt.phase, attempt.progress_percent) == ("uploading", 100.0)
    assert attempt.bytes_done == attempt.bytes_total == done["uploaded_size_bytes"]
    assert asyncio.run(_progress_artifacts(str(attempt.flow_run_id))) == {
        f"upload-job-{job.id}-optimizing": 100.0,
        f"upload-job-{job.id}-uploading": 100.0,
    }


@media_and_s3_only
@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_a_running_upload_shows_its_bytes_on_the_page(
    settings: Settings,
    fault_proxy: S3FaultProxy,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Random bytes: the remux fails fast and the 12 MiB original goes up in 5 MiB parts, one at
    # a time, each held 1.5 s by the proxy: long enough to watch.
    set_env(monkeypatch, multipart_in_parts_of(5, concurrency=1))
    fault_proxy.slow_always(1.5, kinds={"upload_part"})
    source = tmp_path / "big.mp4"
    write_unfinished_recording(source, 12 * MiB)
    job = JobStore(settings.database_url).add_job(str(source), "videos/big.mp4", JobStatus.FAILED)
    assert job.id is not None
    seen: list[dict[str, Any]] = []
    with web_client(LocalRetryQueue(workers=1)) as client:
        assert client.post(f"/api/jobs/{job.id}/retry", headers=LOOPBACK_HEADERS).status_code == 202
        deadline = time.monotonic() + 60
        while not any(
            p["phase"] == "uploading" and 0 < p["bytes_done"] < p["bytes_total"] for p in seen
        ):
            assert time.monotonic() < deadline, f"no upload progress seen: {seen}"
            row = get_ok(client, "/api/jobs")["jobs"][0]
            if row["progress"]:
                assert row["status"] == "in_progress"
                seen.append(row["progress"])
            time.sleep(0.2)
        done = wait_for_status(client, job.id, "completed")
    uploading = [p for p in seen if p["phase"] == "uploading"]
    assert uploading[-1]["bytes_total"] == 12 * MiB
    assert uploading[-1]["percent"] == pytest.approx(
        uploading[-1]["bytes_done"] / (12 * MiB) * 100, abs=0.1
    )
    assert done["uploaded_size_bytes"] == 12 * MiB and done["optimized"] is False
