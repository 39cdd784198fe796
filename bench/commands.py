"""`uv run python bench/commands.py`: how long the every-day commands take, beside a raw baseline.

Every command is a fresh process, timed from start to exit, with `PYTHONDONTWRITEBYTECODE=1` as
on this project's machine kind: what a person waits for. Per round, in this order: the bare
interpreter (`python -c pass`), `python -c "import boto3"`, the raw baseline
(`bench/upload_one.py`: import boto3, the same ffmpeg remux, one PUT of the same ~1 MB file),
then `add`, `list`, `show`, `uv run upload-jobs list` (what a person types: uv checks the
environment first), and `retry` against a running Prefect server, with the temporary server, and
with the temporary server's first start on an empty PREFECT_HOME. The first round is a warm-up
and is not counted. Prints medians and targets and writes CLI-RESULTS.md and cli-results.json
(in bench/, or --results-dir).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: `bench` is not importable from bench/
    sys.path.insert(0, str(REPO_ROOT))

from rich.console import Console  # noqa: E402

from bench.report import machine_info  # noqa: E402
from bench.servers import prefect_server, s3_server  # noqa: E402
from upload_jobs.cli.fitted_table import Column, FittedTable  # noqa: E402
from upload_jobs.jobs.database import dispose_engines  # noqa: E402
from upload_jobs.jobs.models import JobStatus  # noqa: E402
from upload_jobs.jobs.store import JobStore  # noqa: E402
from upload_jobs.media import samples  # noqa: E402
from upload_jobs.media.mp4 import read_layout  # noqa: E402
from upload_jobs.media.remux import build_remux_args, resolve_ffmpeg  # noqa: E402
from upload_jobs.settings import Preset, get_settings  # noqa: E402
from upload_jobs.storage.spaces import ensure_bucket, make_s3_client  # noqa: E402

BUCKET = "bench-cli"
INTERPRETER = "python -c pass"
IMPORT_BOTO3 = 'python -c "import boto3"'
BASELINE = "raw script: boto3, ffmpeg, PUT"
ADD, LIST, SHOW = "add", "list", "show"
RETRY_RUNNING = "retry, running server"
RETRY_TEMPORARY = "retry, temporary server"
RETRY_FIRST_START = "retry, first start"
UV_RUN_LIST = "uv run upload-jobs list"
# Targets of issue 13, on this project's 2-core machine kind.
QUICK_COMMANDS_OVER_INTERPRETER_SECONDS = 0.5
RETRY_OVER_BASELINE_SECONDS = 3.0
RETRY_TEMPORARY_SERVER_SECONDS = 10.0
# Issue 26: what a person types costs no more than twice importing boto3, and uv adds little.
UV_RUN_OVER_BOTO3 = 2.0
UV_RUN_OVER_VENV_SECONDS = 0.2


@dataclass
class Measured:
    """One command's wall times over the counted rounds, and its target."""

    name: str
    walls: list[float] = field(default_factory=list)
    target: str = ""
    target_met: bool | None = None

    @property
    def median(self) -> float:
        """The median wall time in seconds."""
        return statistics.median(self.walls)


@dataclass
class Bench:
    """Where the runs happen: servers, database, files, and the environment commands get."""

    root: Path
    clip: Path
    endpoint: str
    prefect_api_url: str
    ffmpeg: str
    env: dict[str, str]
    store: JobStore
    measured: dict[str, Measured] = field(default_factory=dict)

    def run(self, name: str, argv: Sequence[str], env: dict[str, str], counted: bool) -> str:
        """Run `argv` once, check it exited 0, record its wall time under `name`."""
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(
                f"{name} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        if counted:
            self.measured.setdefault(name, Measured(name)).walls.append(wall)
        return done.stdout


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; the defaults reproduce the README's table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="counted rounds (5)")
    parser.add_argument(
        "--results-dir", type=Path, default=REPO_ROOT / "bench", help="where results go (bench/)"
    )
    parser.add_argument("--no-first-start", action="store_true", help="skip the first-start row")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Set up, run the rounds, print and write the results."""
    arguments = parse_arguments(argv)
    console = Console()
    with (
        tempfile.TemporaryDirectory(prefix="upload-jobs-bench-cli-") as tmp,
        bench(Path(tmp)) as setup,
    ):
        clip_mb = setup.clip.stat().st_size / 1e6
        console.print(
            f"CLI benchmark: a {clip_mb:.2f} MB clip, ffmpeg {setup.ffmpeg}, "
            f"{arguments.rounds} counted rounds after a warm-up"
        )
        for number in range(arguments.rounds + 1):
            with console.status(f"Round {number} of {arguments.rounds} (round 0: warm-up)"):
                one_round(setup, counted=number > 0, first_start=not arguments.no_first_start)
    results = judged(setup.measured)
    console.print(results_table(results))
    write_results(arguments.results_dir, results, clip_mb, setup.ffmpeg)


@contextmanager
def bench(root: Path) -> Iterator[Bench]:
    """The S3 and Prefect servers, a job database and the clip, for the length of the run."""
    ffmpeg = resolve_ffmpeg()
    clip = samples.make_moov_at_end_mp4(
        root / "recording.mp4", ffmpeg=ffmpeg, seconds=4, size="640x360"
    )
    with s3_server(root) as endpoint, prefect_server(root / "prefect-server", None) as api_url:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PREFECT_", "UPLOAD_JOBS_", "AWS_"))
        }
        env |= {
            "PYTHONDONTWRITEBYTECODE": "1",
            "UPLOAD_JOBS_DATABASE_URL": f"sqlite:///{root / 'jobs.db'}",
            "UPLOAD_JOBS_WORK_DIR": str(root / "work"),
            "UPLOAD_JOBS_ENDPOINT_URL": endpoint,
            "UPLOAD_JOBS_BUCKET": BUCKET,
            "UPLOAD_JOBS_PUBLIC_BASE_URL": f"{endpoint}/{BUCKET}",
            "UPLOAD_JOBS_FFMPEG": ffmpeg,
            "AWS_ACCESS_KEY_ID": "bench-access-key",
            "AWS_SECRET_ACCESS_KEY": "bench-secret-key",
            "AWS_DEFAULT_REGION": "us-east-1",
            # Its own Prefect home: the profile of whoever runs the bench must not leak in.
            "PREFECT_HOME": str(root / "prefect-home"),
        }
        saved = dict(os.environ)
        os.environ.update(env)
        get_settings.cache_clear()
        try:
            ensure_bucket(make_s3_client(get_settings()), BUCKET)
            store = JobStore(env["UPLOAD_JOBS_DATABASE_URL"])
            yield Bench(root, clip, endpoint, api_url, ffmpeg, env, store)
        finally:
            os.environ.clear()
            os.environ.update(saved)
            get_settings.cache_clear()
            dispose_engines()


def one_round(setup: Bench, counted: bool, first_start: bool) -> None:
    """Each command once, in the module docstring's order."""
    python = sys.executable
    command = str(Path(python).with_name("upload-jobs"))
    env = setup.env
    setup.run(INTERPRETER, [python, "-c", "pass"], env, counted)
    setup.run(IMPORT_BOTO3, [python, "-c", "import boto3"], env, counted)
    setup.run(BASELINE, [python, "-m", "bench.upload_one", str(baseline_plan(setup))], env, counted)
    key = f"videos/bench-{time.monotonic_ns()}.mp4"
    added = setup.run(ADD, [command, "add", str(setup.clip), "--key", key], env, counted)
    job_id = added.split("Added upload job ", 1)[1].split(":", 1)[0]
    setup.run(LIST, [command, "list"], env, counted)
    setup.run(SHOW, [command, "show", job_id], env, counted)
    if uv := shutil.which("uv"):
        # What a person types: uv's own check of the environment comes on top.
        setup.run(UV_RUN_LIST, [uv, "run", "--project", str(REPO_ROOT), "upload-jobs", "list"],
                  env, counted)  # fmt: skip
    on_server = env | {"PREFECT_API_URL": setup.prefect_api_url}
    retry(setup, RETRY_RUNNING, on_server, counted)
    retry(setup, RETRY_TEMPORARY, env, counted)
    if first_start:
        fresh_home = setup.root / f"prefect-home-{time.monotonic_ns()}"
        retry(setup, RETRY_FIRST_START, env | {"PREFECT_HOME": str(fresh_home)}, counted)
        shutil.rmtree(fresh_home, ignore_errors=True)


def retry(setup: Bench, name: str, env: dict[str, str], counted: bool) -> None:
    """`upload-jobs retry` of a new failed job of the clip; checks it ended completed."""
    key = f"videos/retry-{time.monotonic_ns()}.mp4"
    job = setup.store.add_job(str(setup.clip), key, status=JobStatus.FAILED)
    command = str(Path(sys.executable).with_name("upload-jobs"))
    setup.run(name, [command, "retry", str(job.id)], env, counted)
    if setup.store.get_job(job.id or 0).status != JobStatus.COMPLETED:
        raise RuntimeError(f"{name}: job {job.id} did not end completed")


def baseline_plan(setup: Bench) -> Path:
    """The baseline's input: the project's own remux command for the clip, and where to put it."""
    output = setup.root / "baseline-work" / f"{time.monotonic_ns()}.mp4"
    output.parent.mkdir(exist_ok=True)
    layout = read_layout(setup.clip)
    plan = {
        "ffmpeg_args": build_remux_args(setup.ffmpeg, setup.clip, output, Preset.FASTSTART, layout),
        "output": str(output),
        "endpoint_url": setup.endpoint,
        "bucket": BUCKET,
        "key": f"videos/baseline-{output.stem}.mp4",
    }
    path = output.with_suffix(".json")
    path.write_text(json.dumps(plan))
    return path


def judged(measured: dict[str, Measured]) -> list[Measured]:
    """Every row with its target (and whether it was met) filled in, in the order run."""
    interpreter = measured[INTERPRETER].median
    baseline = measured[BASELINE].median
    for name, row in measured.items():
        if name in (ADD, LIST, SHOW):
            limit = QUICK_COMMANDS_OVER_INTERPRETER_SECONDS
            row.target = f"<= {interpreter + limit:.2f} s (python +{limit} s)"
            row.target_met = row.median <= interpreter + limit
        elif name == RETRY_RUNNING:
            limit = RETRY_OVER_BASELINE_SECONDS
            row.target = f"<= {baseline + limit:.2f} s (raw +{limit:g} s)"
            row.target_met = row.median <= baseline + limit
        elif name == RETRY_TEMPORARY:
            row.target = f"< {RETRY_TEMPORARY_SERVER_SECONDS:g} s"
            row.target_met = row.median < RETRY_TEMPORARY_SERVER_SECONDS
        elif name == UV_RUN_LIST:
            boto3 = measured[IMPORT_BOTO3].median
            venv = measured[LIST].median
            within = min(boto3 * UV_RUN_OVER_BOTO3, venv + UV_RUN_OVER_VENV_SECONDS)
            row.target = (
                f"<= {boto3 * UV_RUN_OVER_BOTO3:.2f} s (boto3 x{UV_RUN_OVER_BOTO3:g}) and "
                f"<= {venv + UV_RUN_OVER_VENV_SECONDS:.2f} s (list +{UV_RUN_OVER_VENV_SECONDS} s)"
            )
            row.target_met = row.median <= within
    return list(measured.values())


def _verdict(row: Measured) -> str:
    if row.target_met is None:
        return "-"
    return f"{row.target}: {'met' if row.target_met else 'NOT met'}"


def results_table(results: list[Measured]) -> FittedTable:
    """The medians as a terminal table, one line per command."""
    table = FittedTable(
        [
            Column("COMMAND", shrinkable=True, min_width=20),
            Column("MEDIAN", justify="right"),
            Column("RANGE", justify="right"),
            Column("TARGET", shrinkable=True, min_width=12),
        ],
        title="Every-day commands, wall time per process (median)",
    )
    for row in results:
        spread = f"{min(row.walls):.2f}-{max(row.walls):.2f}"
        table.add_row(row.name, f"{row.median:.2f} s", spread, _verdict(row))
    return table


def write_results(results_dir: Path, results: list[Measured], clip_mb: float, ffmpeg: str) -> None:
    """cli-results.json (every wall time) and CLI-RESULTS.md (the table, machine, settings)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_info(ffmpeg, "SQLite")
    payload = {
        "machine": machine,
        "clip_mb": round(clip_mb, 3),
        "rows": [asdict(r) for r in results],
    }
    (results_dir / "cli-results.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# Every-day commands: wall time per process",
        "",
        f"Median of {len(results[0].walls)} rounds after a warm-up, `PYTHONDONTWRITEBYTECODE=1`, "
        f"a {clip_mb:.2f} MB clip (`uv run python bench/commands.py`).",
        "",
        "| command | median | range | target |",
        "|---|---:|---:|---|",
    ]
    for row in results:
        spread = f"{min(row.walls):.2f}-{max(row.walls):.2f} s"
        lines.append(f"| {row.name} | {row.median:.2f} s | {spread} | {_verdict(row)} |")
    lines += ["", "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()), ""]
    (results_dir / "CLI-RESULTS.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
