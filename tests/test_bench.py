"""The benchmark's arithmetic: medians, ratios, overhead per job and targets (bench/report.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.io_audit import run_traced, strace_available
from bench.link import Link, LinkProxy
from bench.profiles import step_seconds
from bench.report import write_results
from bench.resume import ResumeResult
from bench.runs import BASELINE, PROJECT, RCLONE, RunResult
from bench.slopes import slopes
from bench.summaries import summarize
from bench.workloads import WORKLOADS
from tests.support.browser import needs_chromium
from upload_jobs.settings import Settings
from upload_jobs.storage.local_s3 import LocalS3Server
from upload_jobs.storage.spaces import make_s3_client

REPO_ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


def run(
    variant: str, workload: str, round_number: int, wall: float, rss_mb: int, jobs: int = 0
) -> RunResult:
    jobs = jobs or WORKLOADS[workload].jobs
    return RunResult(variant, workload, round_number, jobs, wall, rss_mb * 1_000_000, 1)


def test_medians_ratio_and_overhead_per_job_against_the_targets(tmp_path: Path) -> None:
    results = [
        run(PROJECT, "W2", 1, 9.0, 160), run(BASELINE, "W2", 1, 2.0, 110),
        run(PROJECT, "W2", 2, 5.0, 170), run(BASELINE, "W2", 2, 4.0, 110),
        run(PROJECT, "W2", 3, 6.0, 150), run(BASELINE, "W2", 3, 3.0, 120),
        run(PROJECT, "W3", 1, 12.0, 260), run(BASELINE, "W3", 1, 10.0, 100),
    ]  # fmt: skip
    w2, w3 = summarize(results)

    assert (w2.median_a_seconds, w2.median_b_seconds, w2.ratio) == (6.0, 3.0, 2.0)
    assert w2.overhead_per_job_seconds == pytest.approx(3.0 / 80)
    assert (w2.peak_rss_a_mb, w2.peak_rss_b_mb) == (170, 120)  # the highest of the rounds
    assert (w2.target, w2.target_met) == ("peak RSS A <= 250 MB", True)
    assert (w3.target, w3.target_met) == (
        "A/B <= 1.0 (NOT met), peak RSS A <= 250 MB (NOT met)",
        False,
    )

    json_path, markdown_path = write_results(tmp_path, [w2, w3], results, {"cores": 2}, {})
    assert "| W2 | 80 | 6.00 | 3.00 | - | 2.00 | 38 ms |" in markdown_path.read_text()
    assert '"ratio": 2.0' in json_path.read_text()


def test_traced_bytes_per_job_and_the_resume_case_are_reported(tmp_path: Path) -> None:
    results = [run(PROJECT, "W1", 1, 4.0, 200), run(BASELINE, "W1", 1, 5.0, 110)]
    size = 100 * 1_000_000
    traced = [
        RunResult(PROJECT, "W1", 0, 4, 9.0, 1, 4 * size, {"source read": 8 * size}),
        RunResult(BASELINE, "W1", 0, 4, 9.0, 1, 4 * size,
                  {"source read": 4 * size, "work dir written": 8 * size}),
    ]  # fmt: skip
    [w1] = summarize(results, traced)
    assert w1.io_per_job_a == {"source read": 2 * size, "work dir written": 0, "work dir read": 0}
    assert w1.io_per_job_b["work dir written"] == 2 * size
    assert (w1.target, w1.target_met) == (
        "peak RSS A <= 250 MB (met), A writes 0 B to the work dir (met)",
        True,
    )
    resumed = ResumeResult(PROJECT, "W3", 1000 * MIB, 16 * MIB, 51, 800 * MIB, 200 * MIB, 1, 3.0)
    raw = ResumeResult(BASELINE, "W3", 1000 * MIB, 16 * MIB, 51, 800 * MIB, 1000 * MIB, 50, 9.0)

    _, markdown_path = write_results(tmp_path, [w1], results, {}, {}, resumes=[resumed, raw])
    markdown = markdown_path.read_text()
    assert "| W1 | 100 MB | 2.00x | 0.00x | 0.00x | 1.00x | 2.00x | 0.00x |" in markdown
    assert "| 210 MB (20%) | 1 | 3.00 s | met |" in markdown
    assert "| 1049 MB (100%) | 50 | 9.00 s | - |" in markdown


@pytest.mark.skipif(
    not strace_available(), reason="strace is not installed (apt-get install strace)"
)
def test_bytes_are_counted_per_place_for_a_process_and_its_children(tmp_path: Path) -> None:
    source, work = tmp_path / "source", tmp_path / "work"
    source.mkdir(), work.mkdir()
    (source / "video.mp4").write_bytes(b"v" * 300_000)
    # The parent reads the source twice; a child it starts writes it once into the work dir.
    child = "import sys; open(sys.argv[1], 'wb').write(open(sys.argv[2], 'rb').read())"
    parent = (
        "import subprocess, sys; [open(sys.argv[2], 'rb').read() for _ in range(2)]; "
        f"subprocess.run([sys.executable, '-c', {child!r}, sys.argv[1], sys.argv[2]], check=True)"
    )
    command = [sys.executable, "-c", parent, str(work / "copy.mp4"), str(source / "video.mp4")]

    counted = run_traced(command, {"source": source, "work dir": work})
    assert counted == {"source read": 900_000, "work dir written": 300_000}


def test_workload_files_are_named_per_job() -> None:
    files = WORKLOADS["W2"].files(Path("/w"))
    assert len(files) == 80 and files[0] == Path("/w/W2/w2-000.mp4")
    assert WORKLOADS["W1"].sizes_up_to(None) == [4, 16]
    assert WORKLOADS["W1"].sizes_up_to(8) == [4, 8]
    assert WORKLOADS["W3"].sizes_up_to(None, [2, 4]) == [1]


def test_the_slope_and_the_fixed_cost_per_side_and_a_one_size_workload_borrowing_it(
    tmp_path: Path,
) -> None:
    # W1: A costs 2 s + 1.0 s a job, B 1 s + 1.2 s a job, C 0.5 s + 0.8 s a job.
    results = [
        run(side, "W1", 1, fixed + per_job * jobs, 200, jobs)
        for jobs in (4, 16)
        for side, fixed, per_job in ((PROJECT, 2.0, 1.0), (BASELINE, 1.0, 1.2), (RCLONE, 0.5, 0.8))
    ] + [run(PROJECT, "W3", 1, 12.0, 240, 1), run(BASELINE, "W3", 1, 11.2, 130, 1)]
    size = 100 * 1_000_000
    traced = [RunResult(PROJECT, "W1", 0, 4, 9.0, 1, 4 * size, {"source read": 8 * size})]
    summaries = summarize(results, traced)
    w1, w3 = slopes(summaries)

    assert (w1.sizes, w1.intercept_from) == ([4, 16], "W1")
    assert (w1.slope_a_s, w1.slope_b_s, w1.slope_c_s) == pytest.approx((1.0, 1.2, 0.8))
    assert (w1.intercept_a_s, w1.intercept_b_s) == pytest.approx((2.0, 1.0))
    assert w1.slope_ratio == pytest.approx(1.0 / 1.2) and w1.source_read_x == 2.0
    assert w1.target_met, w1.target
    # W3 runs one job: its line goes through W1's fixed cost, A 12 - 2, B 11.2 - 1.
    assert (w3.intercept_from, w3.slope_a_s, w3.slope_b_s) == ("W1", 10.0, pytest.approx(10.2))
    assert w3.slope_c_s is None

    json_path, markdown_path = write_results(tmp_path, summaries, results, {}, {})
    [w1_json, _] = json.loads(json_path.read_text())["slopes"]
    assert {"slope_a_s", "slope_b_s", "slope_ratio", "intercept_a_s", "source_read_x"} <= set(
        w1_json
    )
    markdown = markdown_path.read_text()
    assert "| W1 | 4 and 16 | 1.000 | 1.200 | 0.800 | 0.83 | 2.000 | 1.000 | 0.500 | 2.00x |" in (
        markdown
    )
    assert "| W3 | 1 | 10.000 | 10.200 | - | 0.98 | 2.000 (W1's) |" in markdown


def test_profile_time_is_summed_per_step_and_engine(tmp_path: Path) -> None:
    raw = tmp_path / "profile.txt"
    thread = "thread (0x1): ThreadPoolExecutor-0_0"
    steps = f"{thread};_retry_in_this_run (flows/sweep.py:9);run_upload_steps (flows/r.py:3)"
    raw.write_text(
        f"{steps};run_task_sync (prefect/task_engine.py:1);claim_job (tasks/jobs.py:5) 30\n"
        f"{steps};run_task_sync (prefect/task_engine.py:1);upload_to_spaces (tasks/u.py:7);"
        "upload_video (upload_jobs/storage/spaces.py:144) 120\n"
        f"{steps};run_task_sync (prefect/task_engine.py:1) 50\n"
        "thread (0x2): MainThread;main (bench/x.py:1) 400\n"
    )
    assert step_seconds(raw) == {
        "upload_to_spaces": 1.2,
        "task engine between steps": 0.5,
        "claim_job": 0.3,
    }


def test_the_harness_runs_end_to_end_on_a_few_jobs(tmp_path: Path) -> None:
    """bench/run.py as a person runs it, on 3 jobs of W2 for one round: real ffmpeg, the S3
    server and Prefect server processes, both variants; only the results' shape is checked."""
    command = [sys.executable, str(REPO_ROOT / "bench" / "run.py"), "--workloads", "W2"]
    command += ["--rounds", "1", "--sizes", "1,2", "--work-dir", str(tmp_path / "work")]
    command += ["--results-dir", str(tmp_path / "results")]  # made if missing
    command += ["--no-io"]  # the traced runs cost 20 s here; the count is tested on its own
    finished = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)

    assert finished.returncode == 0, finished.stderr[-3000:]
    document = json.loads((tmp_path / "results" / "results.json").read_text())
    _, two = document["workloads"]
    assert (two["workload"], two["jobs"], two["rounds"]) == ("W2", 2, 1)
    sides = ["A", "B", "C"] if shutil.which("rclone") else ["A", "B"]
    assert sorted({r["variant"] for r in document["runs"]}) == sides
    assert all(r["uploaded_bytes"] > r["jobs"] * 1_000_000 for r in document["runs"])  # ~2 MB
    [line] = document["slopes"]
    # Their values are timings (one round: noise); their shape is what is checked here.
    assert line["sizes"] == [1, 2] and isinstance(line["slope_a_s"], float)
    markdown = (tmp_path / "results" / "RESULTS.md").read_text()
    assert document["machine"]["cores"] and "| W2 | 2 |" in markdown
    assert "| W2 | 1 and 2 |" in markdown
    assert "upload-jobs sweep (A)" in finished.stdout  # the table


def test_the_emulated_link_carries_s3_requests_no_faster_than_its_bandwidth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    link = Link(mbit_per_second=0.8, rtt_ms=100)  # 100,000 bytes a second
    body = bytes(range(256)) * 400  # 102,400 bytes
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "bench-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "bench-test-secret")
    with LocalS3Server() as server:
        proxy = LinkProxy("127.0.0.1", int(server.endpoint_url.rsplit(":", 1)[1]), link).start()
        settings = Settings(endpoint_url=f"http://127.0.0.1:{proxy.port}", region="us-east-1")
        client = make_s3_client(settings)
        client.create_bucket(Bucket="link")
        started = time.monotonic()
        client.put_object(Bucket="link", Key="clip.mp4", Body=body)
        elapsed = time.monotonic() - started

        assert client.get_object(Bucket="link", Key="clip.mp4")["Body"].read() == body
    # A lower bound only: the body cannot cross faster than the link's bandwidth allows.
    assert elapsed >= len(body) / link.bytes_per_second


@needs_chromium
def test_the_startup_benchmark_starts_both_files_in_chromium(tmp_path: Path) -> None:
    results_dir = tmp_path / "results"
    command = [
        sys.executable, str(REPO_ROOT / "bench" / "startup.py"),
        "--minutes", "0.1", "--rounds", "1", "--link-mbit", "50", "--link-rtt-ms", "20",
        "--work-dir", str(tmp_path / "work"), "--results-dir", str(results_dir),
    ]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert finished.returncode == 0, finished.stderr[-3000:]
    results = json.loads((results_dir / "startup-results.json").read_text())
    recording = results["recordings"]["0.1min"]
    assert recording["path"] == "moved_in_process"
    assert recording["model"]["original"]["range_requests"] == 3
    assert recording["model"]["uploaded"]["range_requests"] == 1
    uploaded = recording["median"]["uploaded"]
    # The faststart upload starts from one request at byte 0, and its first frame is shown.
    assert uploaded["requests_before_canplay"] == 1
    assert recording["runs"]["uploaded"][0]["ranges_before_canplay"] == ["bytes=0-"]
    assert 0 < uploaded["canplay_seconds"] <= uploaded["first_frame_seconds"]
    assert recording["median"]["original"]["first_frame_seconds"] > 0
    assert "| 0.1min | **original / uploaded** |" in (results_dir / "STARTUP.md").read_text()
    assert (results_dir / "startup.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
