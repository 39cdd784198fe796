"""What the optimization bought, summed over jobs: the store's figures, `upload-jobs stats` (table
and JSON), `show`'s streaming table and the page's `/api/stats`, on a real database."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.support.command_line import invoke
from tests.support.web_app import HeldRetryQueue, web_client
from upload_jobs.jobs.attempt_report import AttemptReport, StoredObject
from upload_jobs.jobs.claims import new_lease_owner
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.jobs.streaming_stats import completed_startups, startup_lines, streaming_stats
from upload_jobs.media.startup import StartupCost
from upload_jobs.media.streaming import StreamingPath
from upload_jobs.settings import Settings

# What these test (the job table) does not depend on S3: moto only.
pytestmark = pytest.mark.moto_only


MB = 1024 * 1024


def finish_job(
    store: JobStore,
    name: str,
    path: StreamingPath,
    before: StartupCost | None,
    after: StartupCost | None,
    *,
    fallback: tuple[str, str] | None = None,
    completed: bool = True,
) -> int:
    job = store.add_job(f"/recordings/{name}", f"videos/{name}", JobStatus.FAILED)
    claim = store.claim_job(job.id or 0, new_lease_owner(), timedelta(minutes=5), "run")
    report = AttemptReport(preset="faststart", source_size_bytes=10 * MB)
    reason, kind = fallback or (None, None)
    report.record_choice(path, reason, kind)
    report.source_startup, report.uploaded_startup = before, after
    report.step_seconds = {"optimize_for_streaming": 0.25}
    if completed:
        store.mark_completed(claim, report, StoredObject(f"https://cdn.test/videos/{name}", "e"))
    else:
        store.mark_failed(claim, report, "reset", "upload_transient")
    return job.id or 0


@pytest.fixture
def jobs(settings: Settings) -> dict[str, int]:
    store = JobStore(settings.database_url)
    at_end = StartupCost(6 * MB, 6 * MB - 40_000, 40_000, 3)
    moved = StartupCost(90_000, 32, 40_000, 1)
    big_end, big_moved = StartupCost(300 * MB, 0, 0, 3), StartupCost(2 * MB, 32, MB, 1)
    cut = ("source is truncated: box mdat declares 10 bytes past end of file", "source_truncated")
    return {
        "moved": finish_job(store, "a.mp4", StreamingPath.MOVED_IN_PROCESS, at_end, moved),
        "remuxed": finish_job(store, "b.MOV", StreamingPath.FFMPEG_REMUX, big_end, big_moved),
        "ready": finish_job(store, "c.mp4", StreamingPath.ALREADY_READY, moved, moved),
        "cut": finish_job(
            store, "d.mp4", StreamingPath.FALLBACK_ORIGINAL, None, None, fallback=cut
        ),
        "failed": finish_job(
            store, "e.mp4", StreamingPath.MOVED_IN_PROCESS, at_end, moved, completed=False
        ),
    }


def test_the_summary_counts_paths_fallbacks_and_bytes_saved(
    settings: Settings, jobs: dict[str, int]
) -> None:
    startups = completed_startups(settings.database_url)
    assert [s.job_id for s in startups] == sorted(v for k, v in jobs.items() if k != "failed")
    stats = streaming_stats(startups)
    assert (stats.completed_jobs, stats.measured_jobs, stats.optimized_jobs) == (4, 3, 2)
    assert stats.paths == {
        "moved_in_process": 1, "ffmpeg_remux": 1, "already_ready": 1, "fallback_original": 1
    }  # fmt: skip
    [fallback] = stats.fallbacks
    assert (fallback.kind, fallback.jobs) == ("source_truncated", 1)
    assert fallback.example and fallback.example.startswith("source is truncated")
    saved = [6 * MB - 90_000, 298 * MB, 0]
    assert stats.startup_bytes_saved == sum(saved)
    assert stats.median_saved_per_job == sorted(saved)[1]
    assert (stats.median_before, stats.median_after) == (6 * MB, 90_000)
    assert stats.median_remux_seconds == 0.25
    # Before: one source under 256 KB, one of 6 MB, one of 300 MB; after: two under 256 KB.
    bins = {b.label: (b.before, b.after) for b in stats.histogram}
    assert bins == {
        "64 KB to 256 KB": (1, 2), "256 KB to 1 MB": (0, 0), "1 MB to 4 MB": (0, 1),
        "4 MB to 16 MB": (1, 0), "16 MB to 64 MB": (0, 0), "64 MB to 256 MB": (0, 0),
        "≥ 256 MB": (1, 0),
    }  # fmt: skip


def test_the_sweep_report_has_a_line_per_job_and_a_total(
    settings: Settings, jobs: dict[str, int]
) -> None:
    lines = startup_lines(completed_startups(settings.database_url, [jobs["moved"], jobs["cut"]]))
    assert lines == [
        f"- job {jobs['moved']} `a.mp4`: 6.00 MB → 87.9 KB before the first frame "
        "(3 requests → 1); moved_in_process",
        f"- job {jobs['cut']} `d.mp4`: unknown: what went up has no index a player can read; "
        "fallback_original",
        "- **total**, 1 jobs: 6.00 MB → 87.9 KB before the first frame (5.91 MB saved)",
    ]


def test_stats_and_show_on_the_command_line(settings: Settings, jobs: dict[str, int]) -> None:
    code, out = invoke("stats")
    assert code == 0
    assert "startup bytes saved in total" in out and "304 MB" in out
    assert "fallback: source_truncated" in out and "source is truncated" in out
    assert "█" in out  # the histogram
    code, out = invoke("stats", "--json")
    assert code == 0 and json.loads(out)["startup_bytes_saved"] == 6 * MB - 90_000 + 298 * MB
    code, out = invoke("show", str(jobs["moved"]))
    assert code == 0
    assert "Streaming (attempt 1)" in out and "moved_in_process" in out
    assert "6.00 MB → 87.9 KB before the first frame (3 requests → 1)" in out
    assert "39.1 KB at byte 6,251,456 → 39.1 KB at byte 32" in out
    code, out = invoke("show", str(jobs["moved"]), "--json")
    [attempt] = json.loads(out)["attempt_history"]
    assert (attempt["source_startup_requests"], attempt["uploaded_startup_bytes"]) == (3, 90_000)


def test_no_completed_jobs_is_said_plainly(settings: Settings) -> None:
    assert invoke("stats") == (0, "No completed upload jobs yet: nothing to summarize.\n")


def test_the_api_gives_the_summary_and_each_jobs_streaming(
    settings: Settings, jobs: dict[str, int]
) -> None:
    with web_client(HeldRetryQueue()) as client:
        stats = client.get("/api/stats").json()
        detail = client.get(f"/api/jobs/{jobs['moved']}").json()
        cut = client.get(f"/api/jobs/{jobs['cut']}").json()
    assert stats["optimized_jobs"] == 2 and stats["fallbacks"][0]["kind"] == "source_truncated"
    streaming = detail["streaming"]
    assert streaming["path"] == "moved_in_process" and streaming["remux_seconds"] == 0.25
    assert streaming["source"]["range_requests"] == 3 and streaming["uploaded"]["moov_offset"] == 32
    assert streaming["summary"] == "6.00 MB → 87.9 KB before the first frame (3 requests → 1)"
    assert cut["streaming"]["fallback_kind"] == "source_truncated"
    assert cut["streaming"]["source"] is None
