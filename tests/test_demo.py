"""`upload-jobs demo` runs the whole product and reports every job as expected."""

from __future__ import annotations

import json

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
        "videos/Camera Roll é.MOV": "faststart (moov first)",
        "videos/already-faststart.mp4": "faststart (moov first)",
        "videos/moov-at-end.mp4": "faststart (moov first)",
        "videos/truncated.mp4": "truncated",
    }
    assert {obj["content_type"] for obj in report["objects"]} == {"video/mp4"}
