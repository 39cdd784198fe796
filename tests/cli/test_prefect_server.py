"""Which Prefect server a command uses, as a person meets it: a configured one that does not
answer, one already running on this machine, none at all; and the commands that need none."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

from tests.support.command_line import invoke
from tests.support.ports import closed_port_url
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings

# What these test (the CLI's answers) does not depend on S3: moto only.
pytestmark = pytest.mark.moto_only


REPO_ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`upload-jobs ARGS` as its own process, the way a person runs it."""
    return subprocess.run(
        [sys.executable, "-m", "upload_jobs.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO_ROOT,
    )


def process_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """This test's settings for a child process, with a Prefect home of its own and no server
    configured unless `overrides` names one."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return env | {"PREFECT_HOME": str(tmp_path / "prefect-home")} | overrides


@pytest.mark.parametrize(
    "command",
    [["retry", "{id}"], ["retry", "{id}", "--via-deployment"], ["sweep"], ["serve"], ["setup"]],
    ids=lambda command: " ".join(command).replace(" {id}", ""),
)
def test_a_configured_server_that_does_not_answer_is_one_sentence_and_exit_2(
    settings: Settings, clip, command: list[str]
) -> None:
    store = JobStore(settings.database_url)
    job = store.add_job(str(clip("moov_at_end", "a.mp4")), "videos/a.mp4", JobStatus.FAILED)
    dead = closed_port_url("/api")
    with temporary_settings(updates={PREFECT_API_URL: dead}):
        code, output = invoke(*(part.format(id=job.id) for part in command))
    said = " ".join(output.split())
    assert code == 2, said
    assert f"The Prefect server at {dead} does not answer" in said
    assert "PREFECT_API_URL" in said and "prefect server start" in said
    assert "Traceback" not in output
    # Checked before anything was claimed: the job is as it was.
    assert store.get_job(job.id or 0).model_dump(exclude={"updated_at"}) == job.model_dump(
        exclude={"updated_at"}
    )
    assert store.list_attempts(job.id or 0) == []


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_a_server_running_here_is_used_without_configuring_it(
    settings: Settings, clip, tmp_path: Path
) -> None:
    running = get_current_settings().api.url or ""
    store = JobStore(settings.database_url)
    job = store.add_job(str(clip("moov_at_end", "found.mp4")), "videos/found.mp4", "failed")

    done = run_cli(
        "retry", str(job.id), env=process_env(tmp_path, UPLOAD_JOBS_LOCAL_PREFECT_API_URL=running)
    )

    assert done.returncode == 0, done.stderr
    assert "Starting a temporary Prefect server" not in done.stderr
    named = FlowRunFilter(name=FlowRunFilterName(any_=[f"retry-upload-job-{job.id}"]))
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=named)
    [attempt] = store.list_attempts(job.id or 0)
    assert attempt.flow_run_id in {str(run.id) for run in runs}, "the run is on that server"


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
def test_an_expected_failure_is_one_line_on_the_terminal(
    settings: Settings, tmp_path: Path, clip: Callable[[str, str], Path]
) -> None:
    store = JobStore(settings.database_url)
    job = store.add_job(str(clip("faststart", "a.mp4")), "videos/a.mp4", JobStatus.FAILED)
    server = get_current_settings().api.url or ""
    env = process_env(tmp_path, PREFECT_API_URL=server, UPLOAD_JOBS_BUCKET="no-such-bucket-here")

    done = run_cli("retry", str(job.id), env=env)

    assert done.returncode == 1
    said = " ".join(done.stderr.split())  # as the terminal wrapped it
    assert "NoSuchBucket" in said
    # Prefect logs the failed step as it always does, but without a traceback for a failure
    # this project raised on purpose (the Prefect UI keeps the traceback).
    assert "Task run encountered an exception PermanentUploadError" in said, said
    assert "Traceback" not in done.stderr + done.stdout


def test_a_source_no_upload_can_start_from_is_refused_without_a_run_or_an_attempt(
    settings: Settings, tmp_path: Path
) -> None:
    store = JobStore(settings.database_url)
    gone = store.add_job(str(tmp_path / "gone.mp4"), "videos/gone.mp4", JobStatus.FAILED)
    dead = closed_port_url("/api")  # it would be refused if the command went to a server at all

    done = run_cli("retry", str(gone.id), env=process_env(tmp_path, PREFECT_API_URL=dead))

    assert done.returncode == 1
    said = " ".join(done.stderr.split())
    assert f"Upload job {gone.id} failed [source_missing]: Original video file not found" in said
    assert f"No attempt was spent: fix the file, then run `upload-jobs retry {gone.id}`." in said
    assert "Traceback" not in done.stderr + done.stdout
    recorded = store.get_job(gone.id or 0)
    assert (recorded.error_kind, recorded.attempts) == ("source_missing", 0)
    assert store.list_attempts(gone.id or 0) == []


def test_retrying_a_completed_job_starts_no_flow_run(settings: Settings, clip) -> None:
    store = JobStore(settings.database_url)
    job = store.add_job(str(clip("faststart", "done.mp4")), "videos/done.mp4", "completed")
    dead = closed_port_url("/api")  # it would be refused if the command went to a server at all
    with temporary_settings(updates={PREFECT_API_URL: dead}):
        code, output = invoke("retry", str(job.id), "--json")
    assert code == 0, output
    answer = json.loads(output)
    assert answer["message"] == f"Upload job {job.id} is already completed"
    assert answer["flow_run_id"] is None


# What every-day commands import: a new import at the top of a module must not slow them down.
IMPORTS_PROBE = """
import sys
from upload_jobs.cli import app
try:
    app(sys.argv[1:])
except SystemExit as exit_:
    code = exit_.code
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"prefect", "boto3", "fastapi"})
print("IMPORTED", ",".join(heavy), "EXIT", code)
"""


@pytest.mark.parametrize(
    ("command", "allowed"),
    [
        (["add", "{source}", "--key", "videos/imports.mp4"], set()),
        (["list"], set()),
        (["show", "1"], set()),
        (["reconcile", "--dry-run"], {"boto3"}),
    ],
    ids=lambda value: value[0] if isinstance(value, list) else "",
)
def test_every_day_commands_do_not_import_prefect(
    settings: Settings, clip, command: list[str], allowed: set[str]
) -> None:
    source = clip("faststart", "imports.mp4")
    JobStore(settings.database_url).add_job(str(source), "videos/first.mp4")
    argv = [part.format(source=source) for part in command]

    done = subprocess.run(
        [sys.executable, "-c", IMPORTS_PROBE, *argv],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )

    *_, report = done.stdout.strip().splitlines()
    imported, code = report.removeprefix("IMPORTED ").split(" EXIT ")
    assert code in ("0", "None"), done.stdout + done.stderr
    assert set(filter(None, imported.split(","))) <= allowed, report


class _StartedServer:
    """Stands in for Prefect's SubprocessASGIServer: notes the environment its process would get."""

    seen: ClassVar[list[tuple[str | None, str | None]]] = []

    def __init__(self) -> None:
        self.running = False
        self.api_url = "http://127.0.0.1:1/api"

    def start(self, timeout: int) -> None:
        self.seen.append(
            (
                os.environ.get("PREFECT_SERVER_DATABASE_TIMEOUT"),
                os.environ.get("PREFECT_SERVER_LOGGING_LEVEL"),
            )
        )


@pytest.mark.parametrize("users_own", [None, "7"], ids=["unset", "set by the user"])
def test_the_temporary_server_waits_for_locks_and_keeps_quiet_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, users_own: str | None
) -> None:
    import prefect.server.api.server

    from deployments.server import start_temporary_server

    names = ("PREFECT_SERVER_DATABASE_TIMEOUT", "PREFECT_API_DATABASE_TIMEOUT")
    for name in (*names, "PREFECT_SERVER_LOGGING_LEVEL"):
        monkeypatch.setenv(name, "placeholder")  # restored (removed) after the test
        monkeypatch.delenv(name)
    if users_own is not None:
        monkeypatch.setenv("PREFECT_API_DATABASE_TIMEOUT", users_own)
        monkeypatch.setenv("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    monkeypatch.setattr(prefect.server.api.server, "SubprocessASGIServer", _StartedServer)
    _StartedServer.seen = []

    start_temporary_server(lambda notice: contextlib.nullcontext())

    # Its own log (SQLite lock errors it retries itself) is kept off the terminal: CRITICAL only.
    expected = ("60", "CRITICAL") if users_own is None else (None, "WARNING")
    assert _StartedServer.seen == [expected]
