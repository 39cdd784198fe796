"""`upload-jobs demo` runs the whole product and reports every job as expected."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

import flows.retry_upload  # noqa: F401  (Prefect's log handler binds to the real stderr)
from upload_jobs.cli import app


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server", "aws_credentials")
def test_demo_ends_every_job_as_expected() -> None:
    result = CliRunner().invoke(app, ["demo", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["surprises"] == []
    by_name = {job["source_path"].rsplit("/", 1)[-1]: job for job in report["jobs"]}
    assert by_name["moov-at-end.mp4"]["optimized_for_streaming"] is True
    assert by_name["Camera Roll é.MOV"]["status"] == "completed"
    assert by_name["truncated.mp4"]["optimized_for_streaming"] is False
    assert by_name["empty.mp4"]["error_kind"] == "source_empty"
    assert by_name["deleted.mp4"]["error_kind"] == "source_missing"
    layouts = {obj["key"]: obj["layout"] for obj in report["objects"]}
    assert layouts == {
        "videos/x.mp4s/Camera Roll é.MOV": "faststart (moov first)",
        "videos/recordings/already-faststart.mp4": "faststart (moov first)",
        "videos/recordings/moov-at-end.mp4": "faststart (moov first)",
        "videos/recordings/truncated.mp4": "truncated",
    }
    assert {obj["content_type"] for obj in report["objects"]} == {"video/mp4"}


@pytest.mark.flow
def test_demo_web_serves_the_jobs_page_until_interrupted(tmp_path: Path) -> None:
    """As a new user runs it: a process of its own, its own temporary Prefect server, Ctrl-C."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "DO_NOT_TRACK": "1"}
    env.pop("PREFECT_API_URL", None)
    command = [sys.executable, "-m", "upload_jobs.cli", "demo", "--web", "--port", "0"]
    log_path = tmp_path / "demo.log"
    with log_path.open("wb") as log:
        demo = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=ctrl_c_reaches_it
        )
    try:
        url = _wait_for_page(demo, log_path)
        demo_dir = re.search(r"(/\S*upload-jobs-demo-\w+)", log_path.read_text())
        assert demo_dir, log_path.read_text()
        root = Path(demo_dir[1])
        jobs = httpx.get(f"{url}/api/jobs").json()["jobs"]
        waiting = next(job for job in jobs if job["file_name"] == "retry-me from the page.mp4")
        assert waiting["status"] == "failed" and len(jobs) == 7
        retried = httpx.post(
            f"{url}/api/jobs/{waiting['id']}/retry", headers={"X-Upload-Jobs-Token": "local"}
        )
        assert retried.status_code == 202, retried.text
        deadline = time.monotonic() + 90
        while (job := httpx.get(f"{url}/api/jobs/{waiting['id']}").json())["status"] != "completed":
            assert time.monotonic() < deadline, f"{job}\n{log_path.read_text()}"
            time.sleep(0.5)
        assert job["optimized"] is True
        assert httpx.get(job["public_url"]).status_code == 200  # the local S3 server is still up
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(timeout=60)
    assert code == 0, log_path.read_text()
    assert not root.exists(), "Ctrl-C removes the demo's files"


def ctrl_c_reaches_it() -> None:
    """In the child: SIGINT back to its default, as in a terminal. A test run started in the
    background (`pytest &`, nohup) ignores SIGINT, its children inherit that, and Python then
    never raises KeyboardInterrupt: the Ctrl-C this test sends would be lost."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_page(demo: subprocess.Popen[bytes], log_path: Path) -> str:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert demo.poll() is None, log_path.read_text()
        if found := re.search(r"Jobs page: (http://127\.0\.0\.1:\d+)", log_path.read_text()):
            return found[1]
        time.sleep(0.5)
    raise AssertionError(f"the jobs page never came up:\n{log_path.read_text()}")
