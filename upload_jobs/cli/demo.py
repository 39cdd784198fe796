"""`upload-jobs demo`: the whole product on one machine with no configuration at all."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from upload_jobs.cli import presenters
from upload_jobs.cli.fitted_table import Column, FittedTable
from upload_jobs.jobs.database import dispose_engines
from upload_jobs.jobs.files import format_megabytes
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.jobs.streaming_stats import recorded_startup
from upload_jobs.media import samples
from upload_jobs.media.mp4 import NotAnMp4, read_layout
from upload_jobs.media.remux import resolve_ffmpeg
from upload_jobs.media.startup import describe_startup
from upload_jobs.settings import get_settings
from upload_jobs.storage.local_s3 import LocalS3Server
from upload_jobs.storage.object_keys import key_for_new_job
from upload_jobs.storage.spaces import ensure_bucket, make_s3_client

DEMO_BUCKET = "demo-videos"
SIMULATED_FAILURE = "Upload interrupted: connection reset by peer (simulated by the demo)"


@dataclass(frozen=True)
class DemoVideo:
    """One sample job: how to make its file and how its retry should end."""

    relative_path: str
    make: Callable[[Path, str], Any] | None
    expected_status: JobStatus
    expected_optimized: bool
    what: str


DEMO_VIDEOS = [
    DemoVideo(
        "recordings/moov-at-end.mp4",
        lambda p, f: samples.make_moov_at_end_mp4(p, ffmpeg=f),
        JobStatus.COMPLETED,
        True,
        "H.264/AAC, index at the end: index moved to the front in process (no ffmpeg)",
    ),
    DemoVideo(
        "recordings/already-faststart.mp4",
        lambda p, f: samples.make_faststart_mp4(p, ffmpeg=f),
        JobStatus.COMPLETED,
        True,
        "already stream-ready: uploaded byte-identical",
    ),
    DemoVideo(
        "recordings/x.mp4s/Camera Roll é.MOV",
        lambda p, f: samples.make_mov_with_pcm_audio(p, ffmpeg=f),
        JobStatus.COMPLETED,
        True,
        "QuickTime with PCM audio: remuxed by ffmpeg, audio re-encoded to AAC",
    ),
    DemoVideo(
        "recordings/truncated.mp4",
        lambda p, f: samples.make_truncated_mp4(p, ffmpeg=f),
        JobStatus.COMPLETED,
        False,
        "cut off mid-file: falls back to the original",
    ),
    DemoVideo(
        "recordings/empty.mp4",
        lambda p, f: samples.make_empty_file(p),
        JobStatus.FAILED,
        False,
        "0 bytes: fails with source_empty",
    ),
    DemoVideo(
        "recordings/deleted.mp4",
        None,
        JobStatus.FAILED,
        False,
        "missing on disk: fails with source_missing",
    ),
]


@contextmanager
def _demo_environment(root: Path, endpoint_url: str) -> Iterator[None]:
    """Point every setting at the demo's own database, work dir and local S3 server."""
    values = {
        "UPLOAD_JOBS_DATABASE_URL": f"sqlite:///{root / 'demo-jobs.db'}",
        "UPLOAD_JOBS_WORK_DIR": str(root / "work"),
        "UPLOAD_JOBS_ENDPOINT_URL": endpoint_url,
        "UPLOAD_JOBS_BUCKET": DEMO_BUCKET,
        "UPLOAD_JOBS_PUBLIC_BASE_URL": f"{endpoint_url}/{DEMO_BUCKET}",
        "UPLOAD_JOBS_UPLOAD_RETRY_DELAY_SECONDS": "0.5",
        # The local server takes any credentials; these keep real ones out of the demo.
        "AWS_ACCESS_KEY_ID": "demo-access-key",
        "AWS_SECRET_ACCESS_KEY": "demo-secret-key",
        "AWS_DEFAULT_REGION": "us-east-1",
        "UPLOAD_JOBS_AWS_CREDENTIALS_BLOCK": "",
        # The temporary Prefect server would otherwise try (and, offline, fail) to phone home.
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
        dispose_engines()


def _layout_name(path: Path) -> str:
    try:
        layout = read_layout(path)
    except NotAnMp4:
        return "not an MP4"
    if layout.truncated:
        return "truncated"
    if layout.fragmented:
        return "fragmented"
    return "faststart (moov first)" if layout.is_faststart else "moov at end"


def _steps_lines(store: JobStore, job_id: int) -> str:
    attempts = store.list_attempts(job_id)
    steps = attempts[-1].step_seconds or {} if attempts else {}
    line = "steps: " + " -> ".join(f"{name} {seconds:.2f} s" for name, seconds in steps.items())
    if attempts and attempts[-1].optimization_path:
        before, after = (recorded_startup(attempts[-1], side) for side in ("source", "uploaded"))
        line += f"\n  startup: {describe_startup(before, after)}"
    return line


def _objects_table(root: Path) -> tuple[FittedTable, list[dict[str, Any]]]:
    settings = get_settings()
    client = make_s3_client(settings)
    table = FittedTable(
        [
            Column("KEY", shrinkable=True, min_width=12),
            Column("SIZE", justify="right"),
            Column("CONTENT-TYPE"),
            Column("LAYOUT", shrinkable=True, min_width=10),
        ],
        title=f"Objects in s3://{settings.bucket} (local server {settings.endpoint_url})",
    )
    rows: list[dict[str, Any]] = []
    listing = client.list_objects_v2(Bucket=settings.bucket).get("Contents", [])
    for entry in listing:
        key = entry["Key"]
        local = root / "downloaded" / key
        local.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(settings.bucket, key, str(local))
        content_type = client.head_object(Bucket=settings.bucket, Key=key)["ContentType"]
        layout = _layout_name(local)
        rows.append(
            {
                "key": key,
                "size_bytes": entry["Size"],
                "content_type": content_type,
                "layout": layout,
            }
        )
        table.add_row(key, format_megabytes(entry["Size"]), content_type, layout)
    return table, rows


def run_demo(console: Console, json_output: bool = False, web_port: int | None = None) -> int:
    """Run the demo end to end; 0 when every job ended as expected. With `web_port`, then keep
    the local S3 server and serve the jobs page on that port until interrupted."""
    from deployments.server import prefect_server_for_runs
    from flows.runs import prefect_console_muted, run_retry_flow
    from upload_jobs.cli.output import announce

    def say(message: str) -> None:
        if not json_output:
            console.print(message, highlight=False)

    with tempfile.TemporaryDirectory(prefix="upload-jobs-demo-") as tmp, LocalS3Server() as s3:
        root = Path(tmp)
        with _demo_environment(root, s3.endpoint_url):
            settings = get_settings()
            ffmpeg = resolve_ffmpeg(settings.ffmpeg)
            say(
                f"[bold]upload-jobs demo[/bold]: local S3 server at {s3.endpoint_url}, "
                f"job database in {root}, ffmpeg {ffmpeg}"
            )
            ensure_bucket(make_s3_client(settings), settings.bucket)
            store = JobStore(settings.database_url)
            expected: dict[int, DemoVideo] = {}
            for video in DEMO_VIDEOS:
                path = root / video.relative_path
                path.parent.mkdir(parents=True, exist_ok=True)
                if video.make is not None:
                    video.make(path, ffmpeg)
                job = store.add_job(
                    str(path),
                    key_for_new_job(path, settings.key_prefix, settings.key_template),
                    status=JobStatus.FAILED,
                    last_error=SIMULATED_FAILURE,
                )
                assert job.id is not None
                expected[job.id] = video
            with prefect_console_muted():  # the notice below says what Prefect's log would
                server = prefect_server_for_runs(announce)
            say(
                f"Registered {len(expected)} failed upload jobs; retrying each as a flow run on "
                f"the {server.describe}: claim, check, optimize, measure, upload, mark, clean up"
            )
            surprises: list[str] = []
            for job_id, video in expected.items():
                started = time.perf_counter()
                with (
                    console.status(f"Retrying job {job_id}: {escape(video.relative_path)}"),
                    prefect_console_muted(),
                ):
                    outcome = run_retry_flow(job_id)
                colour = "green" if outcome.succeeded else "yellow"
                say(
                    f"[bold]job {job_id}[/bold] {escape(video.relative_path)}: {video.what}\n"
                    f"  [{colour}]{escape(outcome.message)}[/{colour}]\n"
                    f"  {_steps_lines(store, job_id)}\n"
                    f"  {time.perf_counter() - started:.1f} s in all"
                )
                job = outcome.job
                if (job.status, job.optimized_for_streaming) != (
                    video.expected_status,
                    video.expected_optimized,
                ):
                    surprises.append(
                        f"job {job_id} ended {job.status}, optimized={job.optimized_for_streaming}"
                    )
            jobs = store.list_jobs()
            objects_table, objects = _objects_table(root)
            leftovers = [p for p in Path(settings.work_dir).rglob("*") if p.is_file()]
            if leftovers:
                surprises.append(f"temp files left behind: {leftovers}")
            if json_output:
                presenters.print_json(
                    console,
                    {
                        "ok": not surprises,
                        "surprises": surprises,
                        "objects": objects,
                        "jobs": [presenters.job_as_dict(job) for job in jobs],
                    },
                )
            else:
                console.print(presenters.jobs_table(sorted(jobs, key=lambda j: j.id or 0)))
                console.print(objects_table)
                for surprise in surprises:
                    console.print(f"[red]Unexpected:[/red] {surprise}")
                if not surprises:
                    console.print(
                        "[green]Demo finished: every job ended as expected.[/green] "
                        "Run it against your own Spaces bucket: see README "
                        "'Configuration'. To see each step in the Prefect UI, start "
                        "`uv run prefect server start` in another shell and run the demo "
                        "again: it uses that server (UI at http://127.0.0.1:4200)."
                    )
            if web_port is not None:
                _serve_jobs_page(console, store, root / "recordings", ffmpeg, web_port)
    return 0 if not surprises else 1


def _serve_jobs_page(
    console: Console, store: JobStore, recordings: Path, ffmpeg: str, port: int
) -> None:
    """Leave one more failed job to retry from the page, then serve the page until Ctrl-C."""
    from upload_jobs.web.retries import RetryVia
    from upload_jobs.web.server import WebServer, choose_retry_setup

    settings = get_settings()
    path = recordings / "retry-me from the page.mp4"
    samples.make_moov_at_end_mp4(path, ffmpeg=ffmpeg)
    job = store.add_job(
        str(path),
        key_for_new_job(path, settings.key_prefix, settings.key_template),
        status=JobStatus.FAILED,
        last_error=SIMULATED_FAILURE,
    )
    setup = choose_retry_setup(RetryVia.LOCAL, settings.web_retry_workers)
    server = WebServer(settings, setup, settings.web_host, port)
    server.serve_until_interrupted(
        lambda url: console.print(
            f"\n[bold]Jobs page: {url}[/bold] (JSON API docs: {url}/docs)\n"
            f"Job {job.id} ({escape(path.name)}) is left failed for you: press its Retry "
            "button and watch it go up optimized. The local S3 server stays up while the page "
            "is served; Ctrl-C stops both and removes the demo's files.",
            highlight=False,
        )
    )
