"""One measured run of a workload: A (the project's sweep), B (the raw baseline) or C (rclone
copying the sources as they are: the upload alone).

Both run as a fresh process with the same settings, ffmpeg, bucket and concurrency; the wall time
is the whole process, start to exit, as a person running the command would see it. After each run
the bucket is checked (every job's object is there, as video/mp4) and emptied again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import io_audit
from bench.servers import BENCH_KEYS
from bench.workloads import Workload
from upload_jobs.jobs.database import dispose_engines, get_engine, upgrade_schema
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.media.mp4 import read_layout
from upload_jobs.media.remux import build_remux_args, temp_output_path
from upload_jobs.settings import Preset, get_settings
from upload_jobs.storage.spaces import VIDEO_CONTENT_TYPE, make_s3_client

PROJECT = "A"
BASELINE = "B"
RCLONE = "C"  # the upload alone, by the tool a user would pick instead (bench/rclone_peer.py)
BUCKET = "bench"
CONCURRENCY = 2  # the sweep's default


@dataclass(frozen=True)
class RunResult:
    """What one run took, how much memory its uploading process used, and what it uploaded."""

    variant: str
    workload: str
    round: int
    jobs: int
    wall_seconds: float
    peak_rss_bytes: int
    uploaded_bytes: int
    # From a traced run (bench/io_audit.py): "source read", "work dir written", ...; else empty.
    io_bytes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchEnvironment:
    """Where runs put their files, and the servers and ffmpeg they use."""

    root: Path
    workloads_dir: Path
    ffmpeg: str
    s3_endpoint: str
    prefect_api_url: str

    def settings_env(self, work_dir: Path) -> dict[str, str]:
        """The project's settings for a run, as environment variables (A and B alike)."""
        return {
            "UPLOAD_JOBS_ENDPOINT_URL": self.s3_endpoint,
            "UPLOAD_JOBS_BUCKET": BUCKET,
            "UPLOAD_JOBS_PUBLIC_BASE_URL": f"{self.s3_endpoint}/{BUCKET}",
            "UPLOAD_JOBS_WORK_DIR": str(work_dir),
            "UPLOAD_JOBS_FFMPEG": self.ffmpeg,
            # moto takes any key, RGW is given these; they keep real ones out of the bench.
            "AWS_ACCESS_KEY_ID": BENCH_KEYS[0],
            "AWS_SECRET_ACCESS_KEY": BENCH_KEYS[1],
            "AWS_DEFAULT_REGION": "us-east-1",
        }


def run_once(
    env: BenchEnvironment,
    variant: str,
    workload: Workload,
    round_number: int,
    jobs: int,
    profile: Path | None = None,
    trace_io: bool = False,
) -> RunResult:
    """Run `variant` over the first `jobs` files of `workload`; check the bucket, empty it.
    With `profile`, py-spy samples the run and writes its stacks there (collapsed format); with
    `trace_io`, strace counts the bytes read from the sources and written to the work dir."""
    run_dir = env.root / "runs" / f"{workload.name}-{jobs}-{round_number}-{variant}"
    shutil.rmtree(run_dir, ignore_errors=True)
    (run_dir / "work").mkdir(parents=True)
    prefix = f"{run_dir.name}/"
    sources = workload.files(env.workloads_dir)[:jobs]
    child_env = {**os.environ, **env.settings_env(run_dir / "work")}
    if variant == PROJECT:
        database_url = f"sqlite:///{run_dir / 'jobs.db'}"
        add_failed_jobs(database_url, sources, prefix)
        child_env |= {
            "UPLOAD_JOBS_DATABASE_URL": database_url,
            "PREFECT_API_URL": env.prefect_api_url,
        }
        command = ["upload_jobs.cli", "sweep", "--limit", str(jobs)]
        command += ["--concurrency", str(CONCURRENCY), "--json"]
    elif variant == BASELINE:
        plan = run_dir / "plan.json"
        plan.write_text(json.dumps(baseline_plan(env, sources, prefix, run_dir / "work")))
        command = ["bench.baseline", str(plan)]
    else:
        plan = run_dir / "plan.json"
        plan.write_text(json.dumps(rclone_plan(env, sources, prefix)))
        command = ["bench.rclone_peer", str(plan)]
    if profile is not None:
        # Every thread, on CPU or waiting (--idle): where the wall time goes, not only the CPU.
        sampler = [_py_spy(), "record", "--idle", "--threads", "-r", "100"]
        wrapper = [*sampler, "-f", "raw", "-o", str(profile), "--"]
    else:
        wrapper = []
    places = {"source": env.workloads_dir, "work dir": run_dir / "work"} if trace_io else None
    measured = run_measured(command, child_env, run_dir, wrapper=wrapper, trace_places=places)
    if variant == PROJECT:
        output = (run_dir / "stdout.txt").read_text()
        # The report is the JSON object in the output (py-spy, when profiling, adds lines).
        _check_sweep_report(json.loads(output[output.index("{") : output.rindex("}") + 1]), jobs)
    uploaded = check_and_empty_bucket(prefix, jobs)
    shutil.rmtree(run_dir / "work", ignore_errors=True)
    peak = measured.peak_rss_bytes
    if variant == RCLONE:  # the work is rclone's process, not its Python wrapper's
        peak = json.loads((run_dir / "rclone.json").read_text())["peak_rss_bytes"]
    return RunResult(
        variant,
        workload.name,
        round_number,
        jobs,
        measured.wall_seconds,
        peak,
        uploaded,
        measured.io_bytes,
    )


def _py_spy() -> str:
    """py-spy on PATH, else the one installed beside this interpreter (a venv not activated)."""
    beside = Path(sys.executable).with_name("py-spy")
    return shutil.which("py-spy") or (str(beside) if beside.exists() else "py-spy")


@dataclass(frozen=True)
class Measured:
    """One process run: its wall time, its own peak RSS and, when traced, its bytes per place."""

    wall_seconds: float
    peak_rss_bytes: int
    io_bytes: dict[str, int]


def run_measured(
    command: list[str],
    child_env: dict[str, str],
    run_dir: Path,
    *,
    expected_exit: int = 0,
    wrapper: list[str] | tuple[str, ...] = (),
    trace_places: dict[str, Path] | None = None,
) -> Measured:
    """Run `python -m MODULE ARGS` (`command`) under bench.measured, its output in `run_dir`;
    raise unless it exits `expected_exit`. With `trace_places`, under strace (bytes, not time)."""
    result_file = run_dir / "measured.json"
    full = [*wrapper, sys.executable, "-m", "bench.measured", str(result_file), *command]
    trace_folder = None
    if trace_places is not None:
        full, trace_folder = io_audit.traced(full)
    with (run_dir / "stdout.txt").open("w") as stdout, (run_dir / "stderr.log").open("w") as log:
        started = time.perf_counter()
        finished = subprocess.run(full, stdout=stdout, stderr=log, env=child_env, check=False)
        wall = time.perf_counter() - started
    if finished.returncode != expected_exit:
        raise RuntimeError(
            f"run {run_dir.name} exited {finished.returncode}, not {expected_exit}: see {log.name}"
        )
    io_bytes: dict[str, int] = {}
    if trace_folder is not None and trace_places is not None:
        io_bytes = dict(io_audit.bytes_by_place(trace_folder, trace_places))
    peak = json.loads(result_file.read_text())["peak_rss_bytes"]
    return Measured(wall, peak, io_bytes)


def add_failed_jobs(database_url: str, sources: list[Path], prefix: str) -> list[int]:
    """The job table as the recording pipeline leaves it: every upload failed, due now; the
    jobs' ids."""
    upgrade_schema(get_engine(database_url))
    store = JobStore(database_url)
    jobs = [
        store.add_job(
            str(source),
            prefix + source.name,
            status=JobStatus.FAILED,
            last_error="bench: failed upload to retry",
        )
        for source in sources
    ]
    dispose_engines()
    return [job.id or 0 for job in jobs]


def baseline_plan(
    env: BenchEnvironment, sources: list[Path], prefix: str, work_dir: Path
) -> dict[str, Any]:
    """Each job's key and the exact ffmpeg command the project builds for its source."""
    jobs = []
    for source in sources:
        output = temp_output_path(work_dir, source)
        output.unlink()  # as the project does: ffmpeg's -n refuses an existing file, exit 0
        args = build_remux_args(env.ffmpeg, source, output, Preset.FASTSTART, read_layout(source))
        jobs.append({"key": prefix + source.name, "output": str(output), "ffmpeg_args": args})
    return {"concurrency": CONCURRENCY, "jobs": jobs}


def rclone_plan(env: BenchEnvironment, sources: list[Path], prefix: str) -> dict[str, Any]:
    """What rclone copies where, with the project's concurrency and multipart settings."""
    settings = get_settings()
    return {
        "endpoint": env.s3_endpoint,
        "bucket": BUCKET,
        "prefix": prefix,
        "source_dir": str(sources[0].parent),
        "files": [source.name for source in sources],
        "concurrency": CONCURRENCY,
        "multipart_threshold_bytes": settings.multipart_threshold_bytes,
        "multipart_chunk_bytes": settings.multipart_chunk_bytes,
        "parts_in_flight": settings.upload_concurrency,
    }


def _check_sweep_report(report: dict[str, Any], jobs: int) -> None:
    """The sweep's JSON report says every job completed, optimized for streaming."""
    if len(report["completed"]) != jobs or len(report["optimized"]) != jobs:
        raise RuntimeError(f"the sweep did not complete and optimize all {jobs} jobs: {report}")


def check_and_empty_bucket(prefix: str, jobs: int) -> int:
    """Bytes stored under `prefix`, after checking there is one video/mp4 object per job;
    the objects are deleted so the server's memory does not grow from run to run."""
    client = make_s3_client(get_settings())
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    if len(listing) != jobs:
        raise RuntimeError(f"expected {jobs} objects under {prefix}, found {len(listing)}")
    head = client.head_object(Bucket=BUCKET, Key=listing[0]["Key"])
    if head["ContentType"] != VIDEO_CONTENT_TYPE:
        raise RuntimeError(f"{listing[0]['Key']} was stored as {head['ContentType']}")
    if empty := [entry["Key"] for entry in listing if entry["Size"] == 0]:
        raise RuntimeError(f"empty objects uploaded: {empty}")
    for entry in listing:
        client.delete_object(Bucket=BUCKET, Key=entry["Key"])
    return sum(entry["Size"] for entry in listing)
