"""`uv run python bench/event_retry.py`: seconds from a transient failure to the job completed,
retried by its event trigger or by the scheduled sweep alone, with the default 60 s backoff.

One Prefect server (on a fresh PostgreSQL database, dropped after) and the local S3 server;
per variant one `upload-jobs serve` with the same settings. Each round adds a job, fails it
transiently in this process (S3 on a closed port, one request, no task retry) and waits until
it is completed; failure is its `updated_at` when marked failed. "trigger": serve as it is,
sweep once a year. "sweep only": serve's retry triggers deleted once registered, sweep every
minute; its failures are spread over the minute (each round due at another second of it), as
real failures are. Writes bench/event-retry-results.json and bench/EVENT-RETRY.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
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
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script, from bench/

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
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
BENCH_DIR = REPO_ROOT / "bench"
TRIGGER_PREFIX = "retry-upload-job: retry"
VARIANTS = {"trigger": "0 0 1 1 *", "sweep only": "* * * * *"}
DEFAULT_CRON_MEAN_WAIT = 15 * 60 / 2  # seconds to the next */15 tick after the job is due, mean
FAILING = {"UPLOAD_JOBS_S3_MAX_ATTEMPTS": "1", "UPLOAD_JOBS_UPLOAD_RETRIES": "0"}
REGISTER_TIMEOUT = 90.0
# From calling the failing run to its job marked failed, roughly: aims a round's due second.
FAILURE_LEAD_SECONDS = 3.0


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process, None when it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else (int(fields[1]), int(fields[19]))


class Serve:
    """`upload-jobs serve` in a session of its own; every process it started (a flow run's
    runs in a session of its own too) is remembered so that `stop()` leaves none."""

    def __init__(self, env: dict[str, str], cron: str, poll_seconds: float, log: Path) -> None:
        command = [sys.executable, "-m", "upload_jobs.cli", "serve"]
        command += ["--poll-seconds", f"{poll_seconds:g}", "--sweep-cron", cron]
        with log.open("wb") as output:
            self.popen = subprocess.Popen(
                command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.log, self.seen = log, {self.popen.pid: _stat(self.popen.pid)}

    def remember(self) -> None:
        """Add the descendants alive now to the processes `stop()` ends."""
        stats = {int(p.name): _stat(int(p.name)) for p in Path("/proc").glob("[0-9]*")}
        for _ in range(2):  # a flow run's process and its children (ffmpeg)
            self.seen |= {pid: s for pid, s in stats.items() if s and s[0] in self.seen}

    def stop(self) -> None:
        """SIGTERM serve (it cancels the runs it tracks), then SIGKILL whatever is left."""
        self.remember()
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=20)
        for pid, known in self.seen.items():
            if known is not None and (now := _stat(pid)) and now[1] == known[1]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.popen.wait()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database for the Prefect server; yields its asyncpg URL, drops it after."""
    name = f"event_retry_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        make_url(admin_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(admin_url).set(drivername="postgresql+asyncpg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def retry_triggers(client: SyncPrefectClient) -> dict[str, UUID]:
    """The retry triggers' automations on the server, by name."""
    return {a.name: a.id for a in client.read_automations() if a.name.startswith(TRIGGER_PREFIX)}


def start_serve(variant: str, env: dict[str, str], poll: float, log_dir: Path) -> Serve:
    """Serve with the variant's cron, once its deployments and all its triggers are on the
    server; for "sweep only" with the triggers deleted then."""
    policy = retry_policy(get_settings())
    expected = {retry_trigger_name(b) for b in policy.backoffs_with_a_retry_left()}
    serve = Serve(env, VARIANTS[variant], poll, log_dir / f"serve-{variant.replace(' ', '-')}.log")
    deadline = time.monotonic() + REGISTER_TIMEOUT
    with get_client(sync_client=True) as client:
        while not expected <= set(retry_triggers(client)):
            if serve.popen.poll() is not None or time.monotonic() > deadline:
                serve.stop()
                raise RuntimeError(f"serve registered no triggers {expected}:\n{serve.tail()}")
            time.sleep(0.5)
        if variant == "sweep only":
            for automation_id in retry_triggers(client).values():
                client.delete_automation(automation_id)
            time.sleep(2)
            if retry_triggers(client):
                raise RuntimeError(f"triggers still there: {retry_triggers(client)}")
    return serve


def remove_deployments() -> None:
    """Neither deployment nor its triggers left on the server for the next variant's serve."""
    with get_client(sync_client=True) as client:
        for name in (RETRY_DEPLOYMENT, SWEEP_DEPLOYMENT):
            with contextlib.suppress(ObjectNotFound):
                client.delete_deployment(client.read_deployment_by_name(name).id)
        for automation_id in retry_triggers(client).values():
            client.delete_automation(automation_id)


def fail_transiently(store: JobStore, job_id: int) -> UploadJob:
    """Run the job here against S3 on a closed port; the job as it was marked failed."""
    saved = {name: os.environ.get(name) for name in (*FAILING, "UPLOAD_JOBS_ENDPOINT_URL")}
    os.environ.update(FAILING | {"UPLOAD_JOBS_ENDPOINT_URL": f"http://127.0.0.1:{_free_port()}"})
    get_settings.cache_clear()
    try:
        retry_upload_job(job_id, return_state=True)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
    job = store.get_job(job_id)
    if job.status != JobStatus.FAILED or job.error_kind != "upload_transient":
        raise RuntimeError(f"job {job_id} did not fail transiently: {job.status} {job.last_error}")
    return job


def retry_runs(client: SyncPrefectClient, job_id: int) -> list[Any]:
    deployment = client.read_deployment_by_name(RETRY_DEPLOYMENT)
    runs = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])), limit=200
    )
    return [run for run in runs if int(run.parameters.get("job_id", -1)) == job_id]


def measure_round(store: JobStore, clip: Path, serve: Serve, timeout: float) -> dict[str, Any]:
    """Add a job, fail it, wait until it is completed and its retry runs have finished."""
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
            serve.remember()
            now = store.get_job(job.id)
            runs = retry_runs(client, job.id)
            finished = all(r.state is not None and r.state.is_final() for r in runs)
            if (now.status == JobStatus.COMPLETED and finished) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        attempts = store.list_attempts(job.id)
        last_run = attempts[-1].flow_run_id if attempts else None
        with contextlib.suppress(ObjectNotFound, ValueError, TypeError):
            last_run = client.read_flow_run(UUID(str(last_run))).name
    completed_at = as_utc(now.completed_at) if now.status == JobStatus.COMPLETED else None
    return {
        "job_id": job.id,
        "failed_at": failed_at.isoformat(),
        "due_at": due_at.isoformat(),
        "due_second_of_minute": round(due_at.second + due_at.microsecond / 1e6, 1),
        "completed_at": completed_at.isoformat() if completed_at else None,
        "seconds": (completed_at - failed_at).total_seconds() if completed_at else None,
        "status": now.status,
        "retry_runs": [{"name": r.name, "state": r.state_name} for r in runs],
        "completed_by": last_run,
    }


def summarize(rounds: list[dict[str, Any]], backoff: float) -> dict[str, Any]:
    seconds = [r["seconds"] for r in rounds if r["seconds"] is not None]
    median = statistics.median(seconds) if seconds else None
    return {
        "completed": f"{len(seconds)}/{len(rounds)}",
        "median_seconds": median,
        "min_seconds": min(seconds, default=None),
        "max_seconds": max(seconds, default=None),
        "wait_beyond_backoff_seconds": None if median is None else median - backoff,
        "retry_runs_per_failure": [len(r["retry_runs"]) for r in rounds],
    }


def markdown(results: dict[str, Any]) -> str:
    backoff, f = results["backoff_seconds"], (lambda v: "-" if v is None else f"{v:.1f} s")
    lines = [
        f"Transient failure (job marked failed) to job completed, backoff {backoff:g} s, "
        f"`upload-jobs serve --poll-seconds {results['poll_seconds']:g}`, "
        f"{results['rounds']} rounds per variant; measured {results['machine']['date']}.",
        "",
        "| variant | sweep cron | completed | median | min | max | median - backoff "
        "| retry-upload-job runs per failure |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, variant in results["variants"].items():
        s = variant["summary"]
        runs = ", ".join(map(str, s["retry_runs_per_failure"]))
        lines.append(
            f"| {name} | `{variant['cron']}` | {s['completed']} | {f(s['median_seconds'])} "
            f"| {f(s['min_seconds'])} | {f(s['max_seconds'])} "
            f"| {f(s['wait_beyond_backoff_seconds'])} | {runs} |"
        )
    computed = results["computed_default_sweep"]
    lines.append(
        f"| sweep only, **computed, not measured** | `{DEFAULT_SWEEP_CRON}` (default) | - "
        f"| {f(computed['expected_seconds'])} (= {backoff:g} s + {DEFAULT_CRON_MEAN_WAIT:g} s) "
        f"| {f(backoff)} | {f(backoff + 900)} | {f(computed['expected_seconds'] - backoff)} | - |"
    )
    return "\n".join(lines)


def run_variant(
    variant: str, store: JobStore, clip: Path, env: dict[str, str], arguments: argparse.Namespace
) -> dict[str, Any]:
    """Serve for the variant, its rounds one after the other, then nothing of it left."""
    log_dir = Path(env["UPLOAD_JOBS_WORK_DIR"]).parent
    print(f"{variant}: starting serve (sweep cron {VARIANTS[variant]})", flush=True)
    serve = start_serve(variant, env, arguments.poll_seconds, log_dir)
    rounds: list[dict[str, Any]] = []
    try:
        for number in range(arguments.rounds):
            if variant == "sweep only":  # due at another second of the minute each round
                target = 60 * (number + 0.5) / arguments.rounds
                time.sleep((target - FAILURE_LEAD_SECONDS - time.time()) % 60)
            rounds.append(measure_round(store, clip, serve, arguments.timeout))
            print(f"{variant} round {number + 1}: {json.dumps(rounds[-1])}", flush=True)
    finally:
        serve.stop()
    if any(r["seconds"] is None for r in rounds):
        print(f"{variant}: a round timed out; the end of serve's log:\n{serve.tail()}")
    remove_deployments()
    summary = summarize(rounds, get_settings().retry_backoff_seconds)
    return {"cron": VARIANTS[variant], "rounds": rounds, "summary": summary}


def write_report(results: dict[str, Any], arguments: argparse.Namespace) -> str:
    """The JSON and the markdown (what was measured, the table, each round, the command)."""
    command = "uv run python bench/event_retry.py"
    if arguments.rounds != 3 or arguments.poll_seconds != 10:
        command += f" --rounds {arguments.rounds} --poll-seconds {arguments.poll_seconds:g}"
    details = [
        f"- {name} round {n}: job due at :{r['due_second_of_minute']:04.1f}, "
        f"{'-' if r['seconds'] is None else format(r['seconds'], '.1f')} s, completed by "
        f"{r['completed_by']}; retry-upload-job runs: "
        + (", ".join(f"{run['name']} {run['state']}" for run in r["retry_runs"]) or "none")
        for name, variant in results["variants"].items()
        for n, r in enumerate(variant["rounds"], 1)
    ]
    text = "\n\n".join(
        [
            "# Event-triggered retries against the sweep",
            " ".join(__doc__.split("\n\n")[1].split()),
            markdown(results),
            "\n".join(details),
            f"Total wall time {results['wall_seconds']:.0f} s. Reproduce from the repo root "
            f"(PostgreSQL on 127.0.0.1:5432, user postgres, trust):\n\n    {command}",
        ]
    )
    arguments.results_dir.mkdir(parents=True, exist_ok=True)
    (arguments.results_dir / "event-retry-results.json").write_text(json.dumps(results, indent=2))
    (arguments.results_dir / "EVENT-RETRY.md").write_text(text + "\n")
    return text


def main() -> None:
    """Both variants on one Prefect server and one job database; report; clean up always."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--poll-seconds", type=float, default=10.0, help="serve's (default 10)")
    parser.add_argument("--timeout", type=float, default=300.0, help="per round, seconds")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR)
    arguments = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up as on Ctrl-C
    for name in ("UPLOAD_JOBS_RETRY_BACKOFF_SECONDS", "UPLOAD_JOBS_MAX_ATTEMPTS"):
        os.environ.pop(name, None)  # the product's defaults
    for service in ("TRIGGERS", "SCHEDULER"):
        os.environ[f"PREFECT_SERVER_SERVICES_{service}_ENABLED"] = "true"
    started, ffmpeg = time.monotonic(), resolve_ffmpeg()
    results: dict[str, Any] = {"rounds": arguments.rounds, "poll_seconds": arguments.poll_seconds}
    with (
        tempfile.TemporaryDirectory(prefix="event-retry-") as scratch,
        postgres_database(arguments.postgres_url) as database_url,
        s3_server(Path(scratch)) as endpoint,
    ):
        root = Path(scratch)
        env = BenchEnvironment(root, root, ffmpeg, endpoint, "").settings_env(root / "work")
        os.environ.update(env | {"UPLOAD_JOBS_DATABASE_URL": f"sqlite:///{root / 'jobs.db'}"})
        get_settings.cache_clear()
        settings = get_settings()
        results["backoff_seconds"] = settings.retry_backoff_seconds
        ensure_bucket(make_s3_client(settings), BUCKET)
        clip = make_faststart_mp4(root / "clip.mp4", ffmpeg=ffmpeg)
        store = JobStore(settings.database_url)
        with prefect_server(root / "prefect-home", database_url) as api_url:
            serve_env = {**os.environ, "PREFECT_API_URL": api_url, "DO_NOT_TRACK": "1"}
            try:
                with temporary_settings(updates={PREFECT_API_URL: api_url}):
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
    print(write_report(results, arguments))


if __name__ == "__main__":
    main()
