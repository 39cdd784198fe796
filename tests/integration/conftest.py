"""Real Prefect processes for the integration tests: a Prefect server on PostgreSQL, the
`video-uploads` process pool with `retry-upload-job/on-demand` in it, and `prefect worker start`
subprocesses with the test's settings, always stopped together with every process they started.

Why not the session's `prefect_server` (prefect_test_harness): its server keeps its state in SQLite,
and with two process workers polling it while runs are created, Prefect's server (3.8.8, and 3.9.1,
whose SQLite setup and services are unchanged) stalls for 60 s at a time (every writer waits out
SQLite's busy timeout: `mark_work_queues_ready`, `mark_deployments_ready`, worker heartbeats, task-
run events) and answers 503, which fails the sweep's `run_deployment` calls. That happened in every
one of eight trial runs, with or without the sweep flow and with the workers polling every 1 s or
every 10 s; on PostgreSQL it never did. So these tests start their own server on a fresh PostgreSQL
database, and are skipped when `UPLOAD_JOBS_TEST_POSTGRES_URL` is not set (CI sets it).

Linux only: a process tree is read from /proc. Prefect's process worker (3.8.8 and 3.9.1) starts
each flow run in a session of its own (`start_new_session=True` in
`prefect.runner._starter_engine`), so a signal to the worker's process group does not reach the flow
runs it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from deployments import RETRY_DEPLOYMENT, WORK_POOL
from deployments.setup import ensure_work_pool
from flows.retry_upload import retry_upload_job
from tests.support.prefect_runs import delete_runs_of
from tests.support.prefect_services import unused_services_off
from upload_jobs.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("UPLOAD_JOBS_TEST_POSTGRES_URL")
DEPLOYMENT_NAME = RETRY_DEPLOYMENT.split("/", 1)[1]
WORKER_LIMIT = 2
# The process worker's default starts two interpreters per run (a workspace supervisor, then the
# engine); naming the engine command starts one, which saves about 1.5 CPU-seconds per run
# (measured: 30 runs cost 178 CPU-s with the supervisor, 136 CPU-s without). The engine still runs
# the deployment's pull step and entrypoint, as the supervisor would.
ENGINE_COMMAND = f"{sys.executable} -m prefect.engine"
# Bounds, not expectations: each is many times what the step takes on an idle 2-core machine.
SERVER_READY_TIMEOUT = 120.0
WORKER_READY_TIMEOUT = 60.0
STOP_GRACE = 10.0
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as /proc shows it; the start time tells it apart from a later one reusing the
    pid, so teardown never signals a process it did not start."""

    pid: int
    parent: int
    group: int
    start_ticks: int
    zombie: bool


def read_process(pid: int) -> ProcessIdentity | None:
    """`/proc/<pid>/stat` parsed, or None when there is no such process any more."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name sits in parentheses and may itself contain spaces or ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return ProcessIdentity(
        pid=pid,
        parent=int(fields[1]),
        group=int(fields[2]),
        start_ticks=int(fields[19]),
        zombie=fields[0] == "Z",
    )


def process_tree(root: int) -> list[ProcessIdentity]:
    """`root` and every live descendant of it, parents before children."""
    pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    children: dict[int, list[ProcessIdentity]] = {}
    for process in filter(None, map(read_process, pids)):
        children.setdefault(process.parent, []).append(process)
    top = read_process(root)
    tree = [top] if top is not None else []
    for process in tree:  # grows while iterating: a breadth-first walk
        tree.extend(children.get(process.pid, []))
    return [process for process in tree if not process.zombie]


def still_running(process: ProcessIdentity) -> bool:
    """Whether this very process (same pid and start time) is alive and not a zombie."""
    now = read_process(process.pid)
    return now is not None and not now.zombie and now.start_ticks == process.start_ticks


def signal_processes(processes: list[ProcessIdentity], signum: signal.Signals) -> None:
    """Send `signum` to each process still running and to its process group, never to ours."""
    ours = os.getpgrp()
    for process in processes:
        if not still_running(process):
            continue
        if process.group not in (0, 1, ours):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.group, signum)
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)


@dataclass
class ManagedProcess:
    """A subprocess these tests started (a worker or the server): its log, and how to stop or
    kill it together with every process it started."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    started: list[ProcessIdentity] = field(default_factory=list)

    def remember_tree(self) -> list[ProcessIdentity]:
        """The process and its descendants now, remembered for teardown: a flow run's process
        outlives a killed worker (it runs in its own session) and can no longer be found from it."""
        tree = process_tree(self.popen.pid)
        known = {(p.pid, p.start_ticks) for p in self.started}
        self.started.extend(p for p in tree if (p.pid, p.start_ticks) not in known)
        return tree

    def kill_tree(self) -> list[ProcessIdentity]:
        """SIGKILL the process and everything it started, as if its machine died; returns them.

        Everything is stopped first (SIGSTOP), so nothing can start another process between
        the snapshot of the tree and the kill.
        """
        signal_processes(self.remember_tree(), signal.SIGSTOP)
        tree = self.remember_tree()
        signal_processes(tree, signal.SIGKILL)
        self.popen.wait(timeout=STOP_GRACE)
        return tree

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL whatever it or its children left running."""
        self.remember_tree()
        if self.popen.poll() is None:
            signal_processes(self.started[:1], signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=STOP_GRACE)
        signal_processes(self.started, signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.wait(timeout=STOP_GRACE)
        # A killed process is gone once the kernel has torn it down (and its parent reaped it),
        # which is not at once on a busy machine: wait for that, within the grace period.
        deadline = time.monotonic() + STOP_GRACE
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.1)

    def leftovers(self) -> list[ProcessIdentity]:
        """Processes it started that are still running (after `stop()`: none, or a bug)."""
        return [process for process in self.started if still_running(process)]

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The end of the process's output (for a worker: its flow runs' too), for failures."""
        if not self.log_path.is_file():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def start_managed(
    name: str, command: list[str], env: Mapping[str, str], log_path: Path
) -> ManagedProcess:
    """Start `command` from the repo root in a session of its own (so stopping it can never
    signal pytest), its output in `log_path`."""
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process = ManagedProcess(name, popen, log_path)
    process.remember_tree()
    return process


def _free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_healthy(server: ManagedProcess, api_url: str) -> None:
    """Block until the server answers `/health`; fail with its log if it exits or never does."""
    deadline = time.monotonic() + SERVER_READY_TIMEOUT
    while True:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{api_url}/health", timeout=2) as response,
        ):
            if response.status == 200:
                return
        if server.popen.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"Prefect server did not come up:\n{server.log_tail()}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def prefect_api(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A Prefect server on a fresh PostgreSQL database for this module, set as this process's
    PREFECT_API_URL while the module runs; yields the API URL. The database is dropped after.

    A module's `PREFECT_SERVICES_ON` names services to keep on (e.g. "TRIGGERS")."""
    if not POSTGRES_URL:
        pytest.skip("needs UPLOAD_JOBS_TEST_POSTGRES_URL: the Prefect server runs on PostgreSQL")
    name = f"prefect_it_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    database_url = make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg", database=name)
    env = {
        **os.environ,
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": database_url.render_as_string(
            hide_password=False
        ),
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        # Off, so the 2-core machine's CPU goes to the flow runs.
        **unused_services_off(),
    }
    for service in getattr(request.module, "PREFECT_SERVICES_ON", ()):
        env[f"PREFECT_SERVER_SERVICES_{service}_ENABLED"] = "true"
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    server = start_managed("prefect-server", command, env, home / "server.log")
    try:
        _wait_healthy(server, api_url)
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            # The events worker is one per process and keeps the server it was made for: an
            # earlier test's would send this module's events to the session's server.
            EventsWorker.drain_all(timeout=10)
            yield api_url
    finally:
        # Logs and events of flows run in this process, still queued for this server, go
        # before it stops (else they are reported as failing to reach it at exit).
        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)
        server.stop()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    assert not server.leftovers(), f"server processes left running: {server.leftovers()}"


@pytest.fixture(scope="module")
def retry_deployment(prefect_api: str) -> UUID:
    """The `video-uploads` process pool and `retry-upload-job/on-demand` in it, from this
    checkout (a `set_working_directory` pull step), as `prefect deploy` registers them."""
    with get_client(sync_client=True) as client:
        ensure_work_pool(client, WORK_POOL)
    flow = retry_upload_job.from_source(
        source=str(REPO_ROOT), entrypoint="flows/retry_upload.py:retry_upload_job"
    )
    # No image: a process pool runs the flow from the checkout the pull step points at.
    deployment_id: UUID = flow.deploy(
        name=DEPLOYMENT_NAME,
        work_pool_name=WORK_POOL,
        job_variables={"command": ENGINE_COMMAND},
        print_next_steps=False,
        ignore_warnings=True,
    )
    return deployment_id


@pytest.fixture
def fresh_runs(retry_deployment: UUID) -> Iterator[UUID]:
    """The deployment with no flow runs before and after the test; yields its id.

    A later test's workers must not pick up a run left for another database, and job ids restart
    at 1 in every test database, so the sweep's idempotency keys
    (`retry-upload-job-<id>-attempt-<n>`) would otherwise hand back an earlier test's finished
    runs instead of starting new ones.
    """
    delete_runs_of(retry_deployment)
    yield retry_deployment
    delete_runs_of(retry_deployment)


StartWorker = Callable[..., ManagedProcess]


@pytest.fixture
def start_worker(
    settings: Settings, fresh_runs: UUID, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[StartWorker]:
    """`start_worker(env={...})`: a process worker on `video-uploads` with this test's settings.

    The worker inherits the test's environment (every `UPLOAD_JOBS_*` and `AWS_*` variable the
    `settings` fixture set) plus `env`. Every worker is stopped at teardown together with any
    flow-run process it started; when the test failed, the end of each worker's log is printed.
    """
    workers: list[ManagedProcess] = []
    api_url = get_current_settings().api.url
    assert api_url, "the prefect_api fixture sets the API URL"
    home = tmp_path / "prefect-home"
    home.mkdir(exist_ok=True)

    def start(env: Mapping[str, str] | None = None) -> ManagedProcess:
        name = f"worker-{len(workers) + 1}-{uuid.uuid4().hex[:6]}"
        worker_env = {
            **os.environ,
            "PREFECT_API_URL": api_url,
            # Poll every second so a run starts within about a second of being created.
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "5",
            # Its own home: no profile of the machine running the tests can redirect the worker.
            "PREFECT_HOME": str(home),
            "DO_NOT_TRACK": "1",
            **(env or {}),
        }
        command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", WORK_POOL]
        command += ["--type", "process", "--limit", str(WORKER_LIMIT), "--name", name]
        worker = start_managed(name, command, worker_env, tmp_path / f"{name}.log")
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
    call = getattr(request.node, "rep_call", None)
    if call is not None and call.failed:
        for worker in workers:
            print(f"\n--- end of {worker.name}'s log ---\n{worker.log_tail()}")
    leftovers = [process for worker in workers for process in worker.leftovers()]
    assert not leftovers, f"worker processes left running: {leftovers}"


def wait_until_polling(workers: list[ManagedProcess]) -> None:
    """Block until every worker has registered with the pool (its first heartbeat), so the
    figures measured afterwards do not include Prefect's import time."""
    deadline = time.monotonic() + WORKER_READY_TIMEOUT
    names = {worker.name for worker in workers}
    while True:
        with get_client(sync_client=True) as client:
            registered = client.read_workers_for_work_pool(WORK_POOL, limit=200)
        seen = {worker.name for worker in registered}
        if names <= seen:
            return
        exited = [w for w in workers if w.popen.poll() is not None]
        if exited or time.monotonic() > deadline:
            logs = "\n".join(f"--- {w.name} ---\n{w.log_tail()}" for w in workers)
            raise AssertionError(f"workers {sorted(names - seen)} never polled the pool\n{logs}")
        time.sleep(0.25)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test item, so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
