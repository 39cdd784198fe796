"""`uv run python bench/event_retry.py`: seconds from a transient failure to the job completed,
retried by its event trigger or by the scheduled sweep alone, with the default 60 s backoff.

One Prefect server (on a fresh PostgreSQL database, dropped after) and the local S3 server; per
variant one `upload-jobs serve` with the same settings. Each round adds a job, fails it
transiently in this process (S3 on a closed port, one request, no task retry) and waits until it
is completed; the failure is the job's `updated_at` as marked failed. "trigger": serve as it is,
sweep once a year. "sweep only": serve's retry triggers deleted once registered, sweep every
minute, the failures spread over the minute (each round's job due at another second of it).
`--patch-prefect-scheduler` lets the server's scheduler create cron runs on Python < 3.13 (see
PATCH). Writes bench/event-retry-results.json and bench/EVENT-RETRY.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, from bench/

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.events.worker import EventsWorker
from prefect.exceptions import ObjectNotFound
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.report import machine_info
from bench.runs import BUCKET, BenchEnvironment
from bench.servers import _free_port, prefect_server, s3_server
from deployments import DEFAULT_SWEEP_CRON, RETRY_DEPLOYMENT, SWEEP_DEPLOYMENT
from deployments.event_triggers import retry_trigger_name
from flows.retry_upload import retry_upload_job
from upload_jobs.jobs.models import JobStatus, UploadJob, as_utc
from upload_jobs.jobs.retry_policy import retry_policy
from upload_jobs.jobs.store import JobStore
from upload_jobs.media.remux import resolve_ffmpeg
from upload_jobs.media.samples import make_faststart_mp4
from upload_jobs.settings import get_settings
from upload_jobs.storage.spaces import ensure_bucket, make_s3_client

REPO_ROOT = Path(__file__).resolve().parents[1]
TRIGGER_PREFIX = "retry-upload-job: retry"
VARIANTS = {"trigger": "0 0 1 1 *", "sweep only": "* * * * *"}
DEFAULT_CRON_MEAN_WAIT = 15 * 60 / 2  # to the next */15 tick once the job is due, on average
FAILING = {"UPLOAD_JOBS_S3_MAX_ATTEMPTS": "1", "UPLOAD_JOBS_UPLOAD_RETRIES": "0"}
FAILURE_LEAD_SECONDS = 3.0  # from starting the failing run to its job marked failed, about
REGISTER_TIMEOUT = 90.0
# Prefect 3.9.1's server on Python < 3.13 hands `whenever.ZonedDateTime` a pendulum datetime,
# which it refuses ("tzinfo must be of type ZoneInfo (exactly)"): no cron schedule gets runs.
# This, as the server's sitecustomize, gives it the same instant in a ZoneInfo.
PATCH = """from zoneinfo import ZoneInfo
import prefect.types._datetime as datetimes
_original = datetimes._whenever_zdt_from_py
def _in_zoneinfo(dt):
    if dt.tzinfo is not None and type(dt.tzinfo) is not ZoneInfo:
        dt = dt.astimezone(ZoneInfo(getattr(dt.tzinfo, "name", None) or "UTC"))
    return _original(dt)
datetimes._whenever_zdt_from_py = _in_zoneinfo
"""


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process; None when it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else (int(fields[1]), int(fields[19]))


class Serve:
    """`upload-jobs serve` in a session of its own; every process it starts (a flow run's is in
    a session of its own too) is remembered, so that `stop()` leaves none running."""

    def __init__(self, env: dict[str, str], cron: str, poll_seconds: float, log: Path) -> None:
        command = [sys.executable, "-m", "upload_jobs.cli", "serve"]
        command += ["--poll-seconds", f"{poll_seconds:g}", "--sweep-cron", cron]
        with log.open("wb") as output:
            self.popen = subprocess.Popen(
                command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.log, self.seen = log, {self.popen.pid: _stat(self.popen.pid)}

    def children(self) -> list[int]:
        """Remember the descendants alive now; return serve's children (its flow runs)."""
        stats = {int(p.name): _stat(int(p.name)) for p in Path("/proc").glob("[0-9]*")}
        for _ in range(3):  # flow run, its children (ffmpeg), theirs
            self.seen |= {pid: s for pid, s in stats.items() if s and s[0] in self.seen}
        return [pid for pid, s in stats.items() if s and s[0] == self.popen.pid]

    def stop(self) -> None:
        """SIGTERM serve (it cancels the runs it tracks), then SIGKILL whatever is left."""
        self.children()
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=20)
        for pid, known in self.seen.items():
            if known is not None and (now := _stat(pid)) and now[1] == known[1]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.popen.wait()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database for the Prefect server; yields its asyncpg URL, drops it after."""
    name, url = f"event_retry_{uuid.uuid4().hex[:10]}", make_url(admin_url)
    admin = create_engine(url.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(drivername="postgresql+asyncpg", database=name).render_as_string(False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def retry_triggers(client: SyncPrefectClient) -> dict[str, UUID]:
    return {a.name: a.id for a in client.read_automations() if a.name.startswith(TRIGGER_PREFIX)}


def deployment_id(client: SyncPrefectClient, name: str) -> UUID | None:
    try:
        return client.read_deployment_by_name(name).id
    except ObjectNotFound:
        return None


def runs_of(client: SyncPrefectClient, deployment: str) -> list[FlowRun]:
    """The deployment's flow runs (none while it is not registered)."""
    if (found := deployment_id(client, deployment)) is None:
        return []
    of_it = DeploymentFilter(id=DeploymentFilterId(any_=[found]))
    return client.read_flow_runs(deployment_filter=of_it, limit=200)


def start_serve(variant: str, env: dict[str, str], poll: float, log_dir: Path) -> Serve:
    """Serve with the variant's cron once all its triggers are on the server (for "sweep
    only", deleted then); for "sweep only", wait a while for the scheduler's sweep runs."""
    backoffs = retry_policy(get_settings()).backoffs_with_a_retry_left()
    expected = {retry_trigger_name(backoff) for backoff in backoffs}
    serve = Serve(env, VARIANTS[variant], poll, log_dir / f"serve-{variant.replace(' ', '-')}.log")
    deadline = time.monotonic() + REGISTER_TIMEOUT
    with get_client(sync_client=True) as client:
        while not (
            expected <= set(retry_triggers(client)) and deployment_id(client, SWEEP_DEPLOYMENT)
        ):
            if serve.popen.poll() is not None or time.monotonic() > deadline:
                serve.stop()
                raise RuntimeError(f"serve registered no triggers {expected}:\n{serve.tail()}")
            time.sleep(0.5)
        if variant == "sweep only":
            for automation_id in retry_triggers(client).values():
                client.delete_automation(automation_id)
            while not runs_of(client, SWEEP_DEPLOYMENT) and time.monotonic() < deadline + 60:
                time.sleep(1)
    return serve


def fail_transiently(store: JobStore, job_id: int) -> UploadJob:
    """Run the job here against S3 on a closed port; the job as it was marked failed."""
    failing = FAILING | {"UPLOAD_JOBS_ENDPOINT_URL": f"http://127.0.0.1:{_free_port()}"}
    with mock.patch.dict(os.environ, failing):
        get_settings.cache_clear()
        logging.disable(logging.CRITICAL)  # the failing run's tracebacks are expected: not shown
        try:
            retry_upload_job(job_id, return_state=True)
        finally:
            logging.disable(logging.NOTSET)
    get_settings.cache_clear()
    job = store.get_job(job_id)
    if job.status != JobStatus.FAILED or job.error_kind != "upload_transient":
        raise RuntimeError(f"job {job_id} did not fail transiently: {job.status} {job.last_error}")
    return job


def measure_round(store: JobStore, clip: Path, serve: Serve, timeout: float) -> dict[str, Any]:
    """Add a job, fail it; wait until it is completed, its retry runs finished and serve runs
    no flow-run process (serve marks the runs of those it still has cancelled when it stops)."""
    source = clip.with_name(f"{uuid.uuid4().hex[:8]}.mp4")
    shutil.copyfile(clip, source)
    job = store.add_job(str(source), f"videos/event-retry/{source.name}")
    assert job.id is not None
    failed = fail_transiently(store, job.id)
    failed_at, due_at = as_utc(failed.updated_at), as_utc(failed.next_attempt_at)
    assert failed_at is not None and due_at is not None
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            idle, now = not serve.children(), store.get_job(job.id)
            runs = [
                r for r in runs_of(client, RETRY_DEPLOYMENT)
                if str(r.parameters.get("job_id")) == str(job.id)  # the event renders it as text
            ]  # fmt: skip
            finished = all(r.state is not None and r.state.is_final() for r in runs)
            if now.status == JobStatus.COMPLETED and finished and idle:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        by = store.list_attempts(job.id)[-1].flow_run_id
        with contextlib.suppress(ObjectNotFound, ValueError, TypeError):
            by = client.read_flow_run(UUID(str(by))).name
    completed_at = as_utc(now.completed_at) if now.status == JobStatus.COMPLETED else None
    return {
        "job_id": job.id,
        "failed_at": failed_at.isoformat(),
        "due_at": due_at.isoformat(),
        "due_second_of_minute": round(due_at.second + due_at.microsecond / 1e6, 1),
        "completed_at": completed_at.isoformat() if completed_at else None,
        "seconds": round((completed_at - failed_at).total_seconds(), 2) if completed_at else None,
        "status": str(now.status),
        "retry_runs": [{"name": r.name, "state": r.state_name} for r in runs],
        "last_attempt_by": by,
    }


def run_variant(
    variant: str, store: JobStore, clip: Path, env: dict[str, str], arguments: argparse.Namespace
) -> dict[str, Any]:
    """Serve for the variant, its rounds one after the other; then neither serve nor its
    deployments and triggers left."""
    root = Path(env["UPLOAD_JOBS_WORK_DIR"]).parent
    print(f"{variant}: serve with sweep cron {VARIANTS[variant]}", flush=True)
    serve = start_serve(variant, env, arguments.poll_seconds, root)
    result: dict[str, Any] = {"cron": VARIANTS[variant], "rounds": []}
    try:
        with get_client(sync_client=True) as client:
            sweeps_scheduled = len(runs_of(client, SWEEP_DEPLOYMENT))
        rounds, timeout = arguments.rounds, arguments.timeout
        if variant == "sweep only" and not sweeps_scheduled:
            log = (root / "prefect-home" / "server.log").read_text(errors="replace")
            errors = [e for e in log.splitlines() if "Error scheduling" in e or "Error:" in e]
            result["problem"] = "the server scheduled no sweep run: " + " / ".join(errors[-2:])
            print(f"{variant}: {result['problem']}; one round only", flush=True)
            rounds, timeout = 1, get_settings().retry_backoff_seconds + 180
        for number in range(rounds):
            if variant == "sweep only":  # due at another second of the minute each round
                target = 60 * (number + 0.5) / rounds
                time.sleep((target - FAILURE_LEAD_SECONDS - time.time()) % 60)
            result["rounds"].append(measure_round(store, clip, serve, timeout))
            print(f"{variant} round {number + 1}: {json.dumps(result['rounds'][-1])}", flush=True)
    finally:
        serve.stop()
    if any(r["seconds"] is None for r in result["rounds"]):
        print(f"{variant}: a round timed out; the end of serve's log:\n{serve.tail()}")
    with get_client(sync_client=True) as client:
        states = [r.state_name for r in runs_of(client, RETRY_DEPLOYMENT)]
        result["retry_run_states_after_serve_stopped"] = states
        for name in (RETRY_DEPLOYMENT, SWEEP_DEPLOYMENT):
            if (found := deployment_id(client, name)) is not None:
                client.delete_deployment(found)
        for automation_id in retry_triggers(client).values():
            client.delete_automation(automation_id)
    seconds = [r["seconds"] for r in result["rounds"] if r["seconds"] is not None]
    backoff = get_settings().retry_backoff_seconds
    median = statistics.median(seconds) if seconds else None
    result["summary"] = {
        "completed": f"{len(seconds)}/{len(result['rounds'])}",
        "median_seconds": median,
        "min_seconds": min(seconds, default=None),
        "max_seconds": max(seconds, default=None),
        "wait_beyond_backoff_seconds": None if median is None else round(median - backoff, 2),
        "retry_runs_per_failure": [len(r["retry_runs"]) for r in result["rounds"]],
    }
    return result


def write_report(results: dict[str, Any], command: str, results_dir: Path) -> str:
    """The JSON and the markdown (what was measured, the table, each round, the command)."""
    backoff, f = results["backoff_seconds"], (lambda v: "-" if v is None else f"{v:.1f} s")
    lines = [
        "# Retry after a transient failure: event trigger or sweep",
        " ".join(__doc__.split("\n\n")[1].split()),
        f"Backoff {backoff:g} s, `upload-jobs serve --poll-seconds {results['poll_seconds']:g}`, "
        f"Prefect scheduler patched: {'yes' if results['patched_scheduler'] else 'no'}; "
        f"measured {results['machine']['date']} on {results['machine']['cores']} cores.",
        "",
        "| variant | sweep cron | completed | median | min | max | median - backoff "
        "| retry-upload-job runs per failure |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, variant in results["variants"].items():
        s = variant["summary"]
        lines.append(
            f"| {name} | `{variant['cron']}` | {s['completed']} | {f(s['median_seconds'])} "
            f"| {f(s['min_seconds'])} | {f(s['max_seconds'])} "
            f"| {f(s['wait_beyond_backoff_seconds'])} | {s['retry_runs_per_failure']} |"
        )
    expected = backoff + DEFAULT_CRON_MEAN_WAIT
    lines += [
        f"| sweep only, **computed, not measured** | `{DEFAULT_SWEEP_CRON}` (default) | - "
        f"| {f(expected)} = {backoff:g} + {DEFAULT_CRON_MEAN_WAIT:g} | {f(backoff)} "
        f"| {f(backoff + 900)} | {f(DEFAULT_CRON_MEAN_WAIT)} | - |",
        "",
    ]
    for name, variant in results["variants"].items():
        if "problem" in variant:
            lines.append(f"- **{name}: {variant['problem']}**")
        for n, r in enumerate(variant["rounds"], 1):
            runs = ", ".join(f"{x['name']} {x['state']}" for x in r["retry_runs"]) or "none"
            lines.append(
                f"- {name} round {n}: due at second {r['due_second_of_minute']:g} of the minute, "
                f"{f(r['seconds'])}, last attempt by {r['last_attempt_by']}; retry runs: {runs}"
            )
    lines += [
        "",
        f"Total wall time {results['wall_seconds']:.0f} s. Reproduce from the repo root "
        "(PostgreSQL on 127.0.0.1:5432, user postgres, trust):",
        "",
        f"    {command}",
    ]
    (results_dir / "event-retry-results.json").write_text(json.dumps(results, indent=2) + "\n")
    (results_dir / "EVENT-RETRY.md").write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


def main() -> None:
    """Both variants on one Prefect server and one job database; report; clean up always."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--poll-seconds", type=float, default=10.0, help="serve's (default 10)")
    parser.add_argument("--timeout", type=float, default=300.0, help="per round, seconds")
    parser.add_argument("--patch-prefect-scheduler", action="store_true", help="see PATCH")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / "bench")
    arguments = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up as on Ctrl-C
    for name in ("UPLOAD_JOBS_RETRY_BACKOFF_SECONDS", "UPLOAD_JOBS_MAX_ATTEMPTS"):
        os.environ.pop(name, None)  # the product's defaults
    for service in ("TRIGGERS", "SCHEDULER"):
        os.environ[f"PREFECT_SERVER_SERVICES_{service}_ENABLED"] = "true"
    started, ffmpeg = time.monotonic(), resolve_ffmpeg()
    results: dict[str, Any] = {"rounds": arguments.rounds, "poll_seconds": arguments.poll_seconds}
    results["patched_scheduler"] = arguments.patch_prefect_scheduler
    with (
        tempfile.TemporaryDirectory(prefix="event-retry-") as scratch,
        postgres_database(arguments.postgres_url) as database_url,
        s3_server(Path(scratch)) as endpoint,
    ):
        root = Path(scratch)
        env = BenchEnvironment(root, root, ffmpeg, endpoint, "").settings_env(root / "work")
        os.environ.update(env | {"UPLOAD_JOBS_DATABASE_URL": f"sqlite:///{root / 'jobs.db'}"})
        get_settings.cache_clear()
        settings, clip = get_settings(), make_faststart_mp4(root / "clip.mp4", ffmpeg=ffmpeg)
        results["backoff_seconds"] = settings.retry_backoff_seconds
        ensure_bucket(make_s3_client(settings), BUCKET)
        serve_env = {**os.environ, "DO_NOT_TRACK": "1"}
        if arguments.patch_prefect_scheduler:  # the server's environment only
            (root / "patch").mkdir()
            (root / "patch" / "sitecustomize.py").write_text(PATCH)
            paths = [str(root / "patch"), os.environ.get("PYTHONPATH")]
            os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
        with prefect_server(root / "prefect-home", database_url) as api_url:
            serve_env["PREFECT_API_URL"] = api_url
            try:
                with temporary_settings(updates={PREFECT_API_URL: api_url}):
                    store = JobStore(settings.database_url)
                    results["variants"] = {
                        v: run_variant(v, store, clip, serve_env, arguments) for v in VARIANTS
                    }
            finally:  # what this process's failing runs still have queued for the server
                APILogWorker.drain_all(timeout=10)
                EventsWorker.drain_all(timeout=10)
    results["computed_default_sweep"] = {
        "cron": DEFAULT_SWEEP_CRON,
        "expected_seconds": results["backoff_seconds"] + DEFAULT_CRON_MEAN_WAIT,
        "how": "computed, not measured: backoff + the mean wait to the next */15 tick once due",
    }
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    results["machine"] = machine_info(ffmpeg, "PostgreSQL (a fresh database, dropped after)")
    command = " ".join(["uv run python bench/event_retry.py", *sys.argv[1:]])
    arguments.results_dir.mkdir(parents=True, exist_ok=True)
    print(write_report(results, command, arguments.results_dir))


if __name__ == "__main__":
    main()
