"""The first thing a person does, done as they would: a fresh copy of the repository, an empty
Prefect home, `PYTHONDONTWRITEBYTECODE=1` (as on this project's machine kind), no server
configured, then the README's first command and a first `upload-jobs retry`, through `uv run`.

What would have caught the first `demo` timing out on its temporary Prefect server, the first
`retry` dying in Prefect's telemetry, and a traceback where a sentence belongs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from tests.support.ports import closed_port_url
from upload_jobs.media import samples
from upload_jobs.media.remux import resolve_ffmpeg
from upload_jobs.storage.local_s3 import LocalS3Server

REPO_ROOT = Path(__file__).resolve().parents[2]
FIGURES = REPO_ROOT / "test-artifacts" / "first-contact.json"
# A cold machine builds the environment (and compiles its bytecode), then starts Prefect's
# temporary server on a new home twice: minutes, not seconds, on a busy 2-core runner.
COMMAND_TIMEOUT_SECONDS = 420


def uv_command() -> list[str]:
    """How to run uv here: on PATH, else the module pip installed into the base interpreter."""
    if found := shutil.which("uv"):
        return [found]
    base = Path(sys.base_prefix) / "bin" / "python3"
    probe = subprocess.run([str(base), "-m", "uv", "--version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("uv is not installed: the README's commands need it")
    return [str(base), "-m", "uv"]


def fresh_copy(target: Path) -> Path:
    """What a clone of this checkout holds (tracked files, and new ones not ignored, as they
    are now), without its virtual environment, caches or test artifacts."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout: nothing to clone")
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO_ROOT / name
        if source.is_file():  # a file deleted in the work tree is not in a clone of it either
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def user_env(prefect_home: Path, **settings: str) -> dict[str, str]:
    """A new machine's shell: no Prefect server configured or running, no upload-jobs settings
    but the ones given."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "UPLOAD_JOBS_", "VIRTUAL_ENV", "PYTEST_"))
    }
    prefect_home.mkdir(parents=True)
    fresh = {
        "PREFECT_HOME": str(prefect_home),
        "PYTHONDONTWRITEBYTECODE": "1",
        # Where a developer's own Prefect server may be: a port with none, as on a new machine.
        "UPLOAD_JOBS_LOCAL_PREFECT_API_URL": closed_port_url("/api"),
    }
    return env | settings | fresh


def as_a_user(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, float]:
    """Run a command; its exit code, everything it printed, and how long it took."""
    started = time.monotonic()
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    return done.returncode, done.stdout, time.monotonic() - started


@pytest.mark.timeout(3 * COMMAND_TIMEOUT_SECONDS)
def test_the_readme_first_command_and_a_first_retry_work_from_a_fresh_clone(
    tmp_path: Path, aws_credentials: None
) -> None:
    uv = uv_command()
    clone = fresh_copy(tmp_path / "clone")
    figures: dict[str, float] = {}

    demo_env = user_env(tmp_path / "home-demo") | {"COLUMNS": "80"}
    code, output, figures["demo_seconds"] = as_a_user(
        [*uv, "run", "upload-jobs", "demo"], clone, demo_env
    )
    assert code == 0, output
    assert "Demo finished: every job ended as expected" in output, output
    assert "Traceback" not in output and "Failed to send telemetry" not in output, output
    # Its tables fit an 80-column terminal, a line per job (6) and per object (4).
    tables = [line for line in output.splitlines() if line.startswith(("┏", "┃", "│", "└"))]
    assert max(map(len, tables)) <= 80, "\n".join(tables)
    assert sum(line.startswith("│") for line in tables) == 6 + 4, "\n".join(tables)

    with LocalS3Server() as s3:
        env = user_env(
            tmp_path / "home-retry",
            UPLOAD_JOBS_ENDPOINT_URL=s3.endpoint_url,
            UPLOAD_JOBS_BUCKET="first-contact",
            UPLOAD_JOBS_DATABASE_URL=f"sqlite:///{tmp_path / 'jobs.db'}",
            UPLOAD_JOBS_WORK_DIR=str(tmp_path / "work"),
        )
        boto3.client("s3", endpoint_url=s3.endpoint_url).create_bucket(Bucket="first-contact")
        video = samples.make_moov_at_end_mp4(tmp_path / "talk.mp4", ffmpeg=resolve_ffmpeg())
        code, output, figures["add_seconds"] = as_a_user(
            [*uv, "run", "upload-jobs", "add", str(video)], clone, env
        )
        assert code == 0 and "Added upload job 1" in output, output
        # A `uv run` after the first compiles nothing (astral-sh/uv#12202: upload_jobs/bytecode).
        assert "Bytecode compiled" not in output, output
        code, output, figures["first_retry_seconds"] = as_a_user(
            [*uv, "run", "upload-jobs", "retry", "1"], clone, env
        )
    assert code == 0, output
    assert "Upload job 1 retried with streaming optimization" in output, output
    assert "Starting a temporary Prefect server" in output  # the person is told why they wait
    assert "Traceback" not in output and "Failed to send telemetry" not in output, output

    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(json.dumps({k: round(v, 1) for k, v in figures.items()}, indent=2) + "\n")
    print(f"\nfirst contact: {figures}")
