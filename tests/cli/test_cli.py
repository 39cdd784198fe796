"""The `upload-jobs` CLI as a user runs it: tables, --json, exit codes, and no leaked secrets."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCESS_KEY, TEST_SECRET_KEY
from tests.support.command_line import invoke
from tests.support.recordings import write_unfinished_recording
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings

# What these test (the CLI's answers) does not depend on S3: moto only.
pytestmark = pytest.mark.moto_only


def test_add_list_show_json(settings: Settings, clip) -> None:
    source = clip("faststart", "x.mp4s/My Clip.MP4")
    code, output = invoke("add", str(source), "--json")
    assert code == 0
    job = json.loads(output)
    assert job["object_key"] == "videos/x.mp4s/My Clip.MP4" and job["status"] == "pending"

    code, output = invoke("list", "--json")
    assert code == 0 and [j["id"] for j in json.loads(output)] == [job["id"]]

    code, output = invoke("list")
    assert code == 0 and "OPTIMIZED" in output and "My Clip.MP4" in output

    code, output = invoke("show", str(job["id"]), "--json")
    assert code == 0 and json.loads(output)["attempt_history"] == []


def test_add_refuses_missing_file_and_escaping_keys(settings: Settings, tmp_path: Path) -> None:
    code, output = invoke("add", str(tmp_path / "nope.mp4"))
    assert code == 2 and "File not found" in output and "--allow-missing" in output
    video = write_unfinished_recording(tmp_path / "ok.mp4", 1024)
    code, output = invoke("add", str(video), "--key", "../../etc/passwd")
    assert code == 1 and "Error" in output and "Traceback" not in output
    notes = tmp_path / "notes.mp4"
    notes.write_text("meeting notes, not a video\n")
    code, output = invoke("add", str(notes))
    unwrapped = output.replace("\n", "")  # a long temp path wraps at the terminal's width
    assert code == 2 and "not MP4 or QuickTime" in unwrapped and "notes.mp4" in unwrapped
    assert JobStore(settings.database_url).list_jobs() == []


def test_unknown_id_is_a_usage_error(settings: Settings) -> None:
    for command in ("show", "retry"):
        code, output = invoke(command, "999")
        assert code == 2, command
        assert "Upload job 999 not found" in output
    code, output = invoke("retry", "999", "--json")
    assert code == 2 and json.loads(output)["error_kind"] == "job_not_found"
    code, _ = invoke("retry", "not-a-number")
    assert code == 2


def test_unreachable_database_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from upload_jobs.settings import get_settings

    monkeypatch.setenv(
        "UPLOAD_JOBS_DATABASE_URL", "postgresql://someone:hunter2-db-pass@127.0.0.1:1/none"
    )
    get_settings.cache_clear()
    code, output = invoke("list")
    get_settings.cache_clear()
    assert code == 1
    assert "Cannot use the job database postgresql://someone:***@127.0.0.1:1/none" in output
    assert "hunter2-db-pass" not in output and "Traceback" not in output


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_retry_exit_codes_and_wording(settings: Settings, clip, tmp_path: Path) -> None:
    good = JobStore(settings.database_url).add_job(
        str(clip("moov_at_end", "good.mp4")), "videos/good.mp4", status="failed"
    )
    code, output = invoke("retry", str(good.id))
    assert code == 0
    assert f"Upload job {good.id} retried with streaming optimization" in output

    code, output = invoke("retry", str(good.id))
    assert code == 0 and "already completed" in output

    missing = JobStore(settings.database_url).add_job(
        str(tmp_path / "gone.mp4"), "videos/gone.mp4", status="failed"
    )
    code, output = invoke("retry", str(missing.id), "--json")
    assert code == 1
    payload = json.loads(output)
    assert payload["job"]["status"] == "failed"
    assert payload["job"]["error_kind"] == "source_missing"
    assert "Original video file not found" in payload["message"]


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_credentials_never_appear_in_output_logs_or_records(
    settings: Settings, clip, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("botocore", "boto3", "urllib3", "upload_jobs", "prefect"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    store = JobStore(settings.database_url)
    ok = store.add_job(str(clip("faststart", "ok.mp4")), "videos/ok.mp4", status="failed")
    code_ok, out_ok = invoke("retry", str(ok.id), "--json")
    # A permanent S3 failure: its error text goes into the job, the CLI and the logs.
    monkeypatch.setenv("UPLOAD_JOBS_BUCKET", "missing-bucket-for-leak-test")
    from upload_jobs.settings import get_settings

    get_settings.cache_clear()
    bad = store.add_job(str(clip("faststart", "bad.mp4")), "videos/bad.mp4", status="failed")
    code_bad, out_bad = invoke("retry", str(bad.id))
    _, out_show = invoke("show", str(bad.id), "--json")
    _, out_list = invoke("list")
    assert (code_ok, code_bad) == (0, 1)
    records = " ".join(
        f"{job.model_dump_json()} {[a.model_dump_json() for a in store.list_attempts(job.id or 0)]}"
        for job in store.list_jobs()
    )
    everything = "\n".join([out_ok, out_bad, out_show, out_list, caplog.text, records])
    assert "NoSuchBucket" in everything, "the failure really happened and was logged"
    assert "Authorization" in caplog.text, "botocore DEBUG logs were captured"
    assert TEST_SECRET_KEY not in everything
    assert TEST_ACCESS_KEY not in everything


def test_invalid_setting_is_one_clear_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from upload_jobs.settings import get_settings

    monkeypatch.setenv("UPLOAD_JOBS_PRESET", "turbo")
    get_settings.cache_clear()
    code, output = invoke("list")
    get_settings.cache_clear()
    assert code == 2
    assert "Invalid setting: UPLOAD_JOBS_PRESET" in output and "faststart" in output
    assert "Traceback" not in output
