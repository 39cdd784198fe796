"""The processes the benchmark talks to: the local S3 server and a Prefect server, each in a
process group of its own so that stopping one stops everything it started."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench.link import Link

READY_TIMEOUT_SECONDS = 120.0
STOP_GRACE_SECONDS = 10.0


def _stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM the process group, then SIGKILL what is still there after the grace period."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _log_tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


S3_SERVERS = ("moto", "rgw")
# The keys every run uses (bench/runs.py); a real RGW gets them as a user's.
BENCH_KEYS = ("bench-access-key", "bench-secret-key")


@contextlib.contextmanager
def s3_server(log_dir: Path, link: Link | None = None, kind: str = "moto") -> Iterator[str]:
    """The S3 server the runs talk to: moto (`python -m bench.s3_server`, behind `link` if
    given) or a real Ceph RGW (the suite's single-node cluster, tests/support/rgw.py); yields
    the endpoint URL to use."""
    if kind == "rgw":
        if link is not None:
            raise ValueError("--link-mbit is for moto's server only")
        with _rgw() as endpoint:
            yield endpoint
        return
    with _moto(log_dir, link) as endpoint:
        yield endpoint


@contextlib.contextmanager
def _rgw() -> Iterator[str]:
    from tests.support.rgw import RgwCluster

    with RgwCluster() as cluster:
        cluster.ensure_key(*BENCH_KEYS)
        yield cluster.endpoint_url


@contextlib.contextmanager
def _moto(log_dir: Path, link: Link | None) -> Iterator[str]:
    log = log_dir / "s3-server.log"
    command = [sys.executable, "-m", "bench.s3_server"]
    if link is not None:
        command += ["--link-mbit", str(link.mbit_per_second), "--link-rtt-ms", str(link.rtt_ms)]
    with log.open("w") as stderr:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,
        )
    try:
        assert process.stdout is not None
        endpoint = process.stdout.readline().strip()
        if not endpoint.startswith("http://"):
            raise RuntimeError(f"the local S3 server did not start:\n{_log_tail(log)}")
        yield endpoint
    finally:
        _stop(process)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def prefect_server(home: Path, database_url: str | None) -> Iterator[str]:
    """`prefect server start` on 127.0.0.1 with its own PREFECT_HOME (SQLite there unless
    `database_url` names another database); yields the API URL once it answers."""
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    if database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    log = home / "server.log"
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    with log.open("w") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            start_new_session=True,
        )
    try:
        _wait_healthy(process, api_url, log)
        yield api_url
    finally:
        _stop(process)


def _wait_healthy(process: subprocess.Popen[str], api_url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{api_url}/health", timeout=2) as response,
        ):
            if response.status == 200:
                return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the Prefect server did not come up:\n{_log_tail(log)}")
        time.sleep(0.5)
