"""Serving the deployments for a test: `upload-jobs serve` as a process of its own, and the
server left without the deployments or their runs before and after."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.settings import get_current_settings

from deployments import RETRY_DEPLOYMENT, SWEEP_DEPLOYMENT
from tests.support.prefect_runs import delete_runs_of

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVE_STARTUP_SECONDS = 60
# No sweep may fire during a test unless it asks: once a year, at New Year.
NEVER_DURING_A_TEST = "0 0 1 1 *"


def delete_deployments() -> None:
    """Neither deployment on the server, nor any run of them: no worker or runner of a later
    test may pick up a run (a scheduled sweep above all) meant for another test's database."""
    with get_client(sync_client=True) as client:
        for name in (RETRY_DEPLOYMENT, SWEEP_DEPLOYMENT):
            try:
                deployment = client.read_deployment_by_name(name)
            except ObjectNotFound:
                continue
            delete_runs_of(deployment.id)
            client.delete_deployment(deployment.id)


class ServeProcess:
    """`upload-jobs serve` in a subprocess, against the session's Prefect server."""

    def __init__(self, log_path: Path, sweep_cron: str = NEVER_DURING_A_TEST) -> None:
        env = {
            **os.environ,
            "PREFECT_API_URL": str(get_current_settings().api.url),
            "DO_NOT_TRACK": "1",
        }
        self.log_path = log_path
        with log_path.open("wb") as log:
            command = [sys.executable, "-m", "upload_jobs.cli", "serve", "--poll-seconds", "1"]
            command += ["--sweep-cron", sweep_cron]
            self.popen = subprocess.Popen(
                command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_until_serving(self) -> None:
        """Return once this process has registered the retry deployment (deleted beforehand)."""
        deadline = time.monotonic() + SERVE_STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert self.popen.poll() is None, f"serve exited:\n{self.log()}"
            with get_client(sync_client=True) as client, contextlib.suppress(ObjectNotFound):
                client.read_deployment_by_name(RETRY_DEPLOYMENT)
                return
            time.sleep(0.5)
        raise AssertionError(f"serve did not register its deployments:\n{self.log()}")

    def stop(self, signum: signal.Signals = signal.SIGTERM) -> None:
        """SIGTERM, as a service manager stops it (or Ctrl-C's SIGINT); killed if it lingers."""
        if self.popen.poll() is None:
            self.popen.send_signal(signum)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def log(self, lines: int = 60) -> str:
        """The end of the process's output, flow runs included."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
