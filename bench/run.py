"""`uv run python bench/run.py`: the project's sweep (A) against a raw baseline (B), side by side.

Generates the workloads with ffmpeg, starts the local S3 server and a Prefect server as processes
of their own, runs A B A B ... over each workload, prints medians, ratios, overhead per job and
peak RSS, and writes bench/results.json and bench/RESULTS.md. `--help` lists the options.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import sys
import sysconfig
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: `bench` is not importable from bench/
    sys.path.insert(0, str(REPO_ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.io_audit import strace_available  # noqa: E402
from bench.link import Link  # noqa: E402
from bench.profiles import step_seconds  # noqa: E402
from bench.report import machine_info, print_summary, write_results  # noqa: E402
from bench.resume import ResumeResult, run_resume_case  # noqa: E402
from bench.runs import (  # noqa: E402
    BASELINE,
    BUCKET,
    CONCURRENCY,
    PROJECT,
    RCLONE,
    BenchEnvironment,
    RunResult,
    run_once,
)
from bench.servers import S3_SERVERS, prefect_server, s3_server  # noqa: E402
from bench.summaries import summarize  # noqa: E402
from bench.workloads import WORKLOADS, Workload, ensure_workloads  # noqa: E402
from upload_jobs.jobs.database import redacted_url  # noqa: E402
from upload_jobs.media.remux import resolve_ffmpeg  # noqa: E402
from upload_jobs.settings import get_settings  # noqa: E402
from upload_jobs.storage.spaces import ensure_bucket, make_s3_client  # noqa: E402

WARM_UP_JOBS = 2
WARM_UP_WORKLOAD = "W2"
SIDES = (PROJECT, BASELINE)  # and RCLONE, where rclone is installed


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; every option has a default that reproduces RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="A B pairs per workload (3)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="at most this many jobs per workload: a quick check (the targets are for all)",
    )
    parser.add_argument(
        "--sizes",
        default=None,
        help="comma-separated numbers of jobs to run every workload at, instead of its own "
        "(W1: 4,16; W2: 20,80; W3: 1): a quick check",
    )
    parser.add_argument("--workloads", default="W1,W2,W3", help="which, comma-separated")
    parser.add_argument(
        "--s3",
        choices=S3_SERVERS,
        default="moto",
        help="the S3 server: moto's imitation, or a real Ceph RGW from Debian's packages "
        "(results-rgw.json, RESULTS-rgw.md)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=REPO_ROOT / "bench" / ".work",
        help="workloads and runs (bench/.work; the workloads are kept)",
    )
    parser.add_argument(
        "--prefect-database-url",
        default=None,
        help="the Prefect server's database (default: SQLite in its home)",
    )
    parser.add_argument(
        "--link-mbit",
        type=float,
        default=None,
        help="put an emulated link of this bandwidth (each way) in front of the S3 server",
    )
    parser.add_argument("--link-rtt-ms", type=float, default=20.0, help="its round trip (20)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the rounds, run A once more per workload under py-spy and show its steps",
    )
    parser.add_argument(
        "--no-io",
        action="store_true",
        help="skip the I/O columns (one more A and B per workload under strace, not timed)",
    )
    parser.add_argument(
        "--resume",
        default="W3",
        help="the workload whose first file's upload is broken at 80 %% and resumed (W3; "
        "'none' skips it; run only when that workload is run)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=REPO_ROOT / "bench",
        help="where results.json and RESULTS.md go (bench/)",
    )
    arguments = parser.parse_args(argv)
    unknown = set(arguments.workloads.split(",")) - set(WORKLOADS)
    if arguments.resume not in (*WORKLOADS, "none"):
        parser.error(f"--resume takes {', '.join(WORKLOADS)} or none")
    if arguments.sizes is not None:
        try:
            arguments.sizes = [int(size) for size in arguments.sizes.split(",")]
        except ValueError:
            parser.error("--sizes takes numbers of jobs, comma-separated: 2,4")
    if unknown or arguments.rounds < 1 or (arguments.jobs is not None and arguments.jobs < 1):
        parser.error(f"--workloads takes {', '.join(WORKLOADS)}; --rounds and --jobs at least 1")
    return arguments


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when every run did its work (targets met or not)."""
    arguments = parse_arguments(argv)
    console = Console(stderr=True, highlight=False)
    workloads = [WORKLOADS[name] for name in arguments.workloads.split(",")]
    root: Path = arguments.work_dir.resolve()
    # Children run `python -m bench.…` and must find this checkout's packages.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
    )
    console.print("Compiling bytecode once, as `uv sync --compile-bytecode` would")
    _compile_bytecode()
    ffmpeg = resolve_ffmpeg()
    # The warm-up runs on W2's small files, whichever workloads are measured.
    needed = list({w.name: w for w in [WORKLOADS[WARM_UP_WORKLOAD], *workloads]}.values())
    ensure_workloads(needed, root / "workloads", ffmpeg, console.print)
    link = Link(arguments.link_mbit, arguments.link_rtt_ms) if arguments.link_mbit else None
    results: list[RunResult] = []
    traced: list[RunResult] = []
    resumes: list[ResumeResult] = []
    trace_io = not arguments.no_io and strace_available()
    if not arguments.no_io and not trace_io:
        console.print("strace is not installed: no I/O columns (apt-get install strace)")
    sides = SIDES + ((RCLONE,) if shutil.which("rclone") else ())
    if RCLONE not in sides:
        console.print("rclone is not installed: no C column (apt-get install rclone)")
    with (
        s3_server(root, link, arguments.s3) as endpoint,
        prefect_server(root / "prefect-home", arguments.prefect_database_url) as api_url,
    ):
        env = BenchEnvironment(root, root / "workloads", ffmpeg, endpoint, api_url)
        os.environ.update(env.settings_env(root / "work"))
        get_settings.cache_clear()
        ensure_bucket(make_s3_client(get_settings()), BUCKET)
        console.print(f"{arguments.s3} S3 server {endpoint}, Prefect server {api_url}")
        console.print(f"Warm-up runs (not counted): {', '.join(sides)} on 2 small jobs")
        for variant in sides:
            run_once(env, variant, WORKLOADS[WARM_UP_WORKLOAD], 0, WARM_UP_JOBS)
        for workload in workloads:
            sizes = workload.sizes_up_to(arguments.jobs, arguments.sizes)
            # The first pass over a workload's files pays for reading them from disk and for
            # the S3 server's first allocations: not what either side costs.
            console.print(f"Warm-up run of B over {workload.name} (not counted)")
            run_once(env, BASELINE, workload, 0, sizes[-1])
            for jobs in sizes:
                results += _rounds(env, workload, jobs, sides, arguments.rounds, console)
            jobs = sizes[0]
            if trace_io:
                console.print(f"{workload.name} under strace, A and B (bytes, not timed)")
                traced += [run_once(env, v, workload, 0, jobs, trace_io=True) for v in sides]
            if arguments.resume == workload.name:
                for variant in SIDES:
                    console.print(f"{workload.name} upload broken at 80 %, then resumed: {variant}")
                    resumes.append(run_resume_case(env, workload, variant))
            if arguments.profile:
                _profile(env, workload, jobs, console)
    summaries = summarize(results, traced)
    # Eleven columns: narrower than ~140 characters (a pipe, a small terminal) they wrap badly.
    print_summary(Console(width=max(Console().width, 140)), summaries, resumes)
    database_url = arguments.prefect_database_url
    database = redacted_url(database_url) if database_url else "SQLite (in PREFECT_HOME)"
    settings = _settings() | {
        "S3 server": "Ceph RGW 16.2 (Debian's packages)" if arguments.s3 == "rgw" else "moto",
        "link to the S3 server": link.describe() if link else "loopback",
    }
    written = write_results(
        arguments.results_dir,
        summaries,
        results,
        machine_info(ffmpeg, database),
        settings,
        suffix=("-rgw" if arguments.s3 == "rgw" else "") + (f"-{link.label()}" if link else ""),
        resumes=resumes,
    )
    console.print(f"Wrote {', '.join(str(path) for path in written)}")
    return 0


def _rounds(
    env: BenchEnvironment, workload: Workload, jobs: int, sides: tuple[str, ...], rounds: int,
    console: Console,
) -> list[RunResult]:  # fmt: skip
    """`rounds` runs of each side over `jobs` files, interleaved (A B C A B C ...)."""
    results = []
    for round_number in range(1, rounds + 1):
        for variant in sides:
            result = run_once(env, variant, workload, round_number, jobs)
            results.append(result)
            console.print(
                f"{workload.name} x{jobs} round {round_number}/{rounds} {variant}: "
                f"{result.wall_seconds:.2f} s, peak RSS {result.peak_rss_bytes / 1e6:.0f} MB"
            )
    return results


def _profile(env: BenchEnvironment, workload: Workload, jobs: int, console: Console) -> None:
    """One more A run under py-spy (not counted: sampling slows it); its time per step."""
    profile = env.root / f"profile-{workload.name}-A.txt"
    result = run_once(env, PROJECT, workload, 0, jobs, profile=profile)
    table = Table(title=f"A over {workload.name} under py-spy ({result.wall_seconds:.2f} s)")
    for header in ("where", "thread-seconds", "per job"):
        table.add_column(header, justify="left" if header == "where" else "right")
    for where, seconds in step_seconds(profile).items():
        table.add_row(where, f"{seconds:.2f}", f"{seconds / jobs * 1000:.0f} ms")
    console.print(table)
    console.print(f"Stacks: {profile} (flamegraph.pl or speedscope.app read them)")


def _settings() -> dict[str, object]:
    settings = get_settings()
    return {
        "concurrency (jobs at once)": CONCURRENCY,
        "multipart threshold bytes": settings.multipart_threshold_bytes,
        "multipart chunk bytes": settings.multipart_chunk_bytes,
        "parts in flight per upload": settings.upload_concurrency,
        "preset": str(settings.preset),
    }


def _compile_bytecode() -> None:
    """Every interpreter the benchmark starts would otherwise compile Prefect from source when
    PYTHONDONTWRITEBYTECODE is set (5 CPU-s per process), which no real install pays."""
    for directory in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        compileall.compile_dir(directory, quiet=2, workers=os.cpu_count() or 1)
    for package in ("upload_jobs", "flows", "tasks", "deployments", "bench"):
        compileall.compile_dir(REPO_ROOT / package, quiet=2)


if __name__ == "__main__":
    sys.exit(main())
