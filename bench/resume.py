"""The resume case: a workload's upload refused from 80 % of its parts on, then the next attempt.

A and B each upload one file through the fault proxy (tests/support/s3_fault_proxy.py) with no
retries of their own (S3 max attempts 1, task retries 0): every part from the refused one on
answers 503 SlowDown, so the first attempt fails. Faults off, the same command runs again, as the
next sweep or a person's `retry` would. A (`upload-jobs retry`) resumes its recorded multipart
upload; B (the raw loop) has nothing to resume and sends the whole file again. The proxy counts
the part bodies each attempt got through to the endpoint.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass

from bench.runs import (
    PROJECT,
    BenchEnvironment,
    add_failed_jobs,
    baseline_plan,
    check_and_empty_bucket,
    run_measured,
)
from bench.workloads import Workload
from tests.support.s3_fault_proxy import S3FaultProxy
from upload_jobs.settings import get_settings
from upload_jobs.storage.resume import part_size_for

REFUSED_FROM = 0.8  # the share of the parts that gets through on the first attempt


@dataclass(frozen=True)
class ResumeResult:
    """What each attempt sent of one upload broken at `refused_from_part`."""

    variant: str
    workload: str
    size_bytes: int
    part_bytes: int
    refused_from_part: int
    first_attempt_bytes: int
    second_attempt_bytes: int
    parts_sent_twice: int
    second_attempt_seconds: float

    @property
    def resent_share(self) -> float:
        """How much of the file the second attempt sent, 0 to 1 (or more)."""
        return self.second_attempt_bytes / self.size_bytes


def run_resume_case(env: BenchEnvironment, workload: Workload, variant: str) -> ResumeResult:
    """Upload the workload's first file with `variant` through the fault proxy, refused from
    80 % of its parts on; then again with the faults off. The bucket is checked and emptied."""
    source = workload.files(env.workloads_dir)[0]
    run_dir = env.root / "runs" / f"{workload.name}-resume-{variant}"
    shutil.rmtree(run_dir, ignore_errors=True)
    (run_dir / "work").mkdir(parents=True)
    prefix = f"{run_dir.name}/"
    size = source.stat().st_size
    part_bytes = part_size_for(size, get_settings().multipart_chunk_bytes)
    refused_from = math.floor(math.ceil(size / part_bytes) * REFUSED_FROM) + 1
    with S3FaultProxy(env.s3_endpoint) as proxy:
        child_env = {
            **os.environ,
            **env.settings_env(run_dir / "work"),
            "UPLOAD_JOBS_ENDPOINT_URL": proxy.endpoint_url,
            "UPLOAD_JOBS_S3_MAX_ATTEMPTS": "1",
            "UPLOAD_JOBS_UPLOAD_RETRIES": "0",
        }
        if variant == PROJECT:
            database_url = f"sqlite:///{run_dir / 'jobs.db'}"
            [job_id] = add_failed_jobs(database_url, [source], prefix)
            child_env |= {
                "UPLOAD_JOBS_DATABASE_URL": database_url,
                "PREFECT_API_URL": env.prefect_api_url,
            }
            command = ["upload_jobs.cli", "retry", str(job_id)]
        else:
            plan = run_dir / "plan.json"
            plan.write_text(json.dumps(baseline_plan(env, [source], prefix, run_dir / "work")))
            command = ["bench.baseline", str(plan)]
        proxy.fail_always(503, "SlowDown", kinds={"upload_part"}, min_part_number=refused_from)
        run_measured(command, child_env, run_dir, expected_exit=1)
        first = _stored_parts(proxy)
        # The raw loop leaves its remuxed file behind when the upload fails; ffmpeg's -n would
        # refuse to write it again.
        for leftover in (run_dir / "work").iterdir():
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        proxy.clear_faults()
        proxy.reset_counts()
        second_run = run_measured(command, child_env, run_dir)
        second = _stored_parts(proxy)
    check_and_empty_bucket(prefix, 1)
    shutil.rmtree(run_dir / "work", ignore_errors=True)
    return ResumeResult(
        variant,
        workload.name,
        size,
        part_bytes,
        refused_from,
        sum(size for _, size in first),
        sum(size for _, size in second),
        _sent_twice(first, second),
        second_run.wall_seconds,
    )


def _stored_parts(proxy: S3FaultProxy) -> list[tuple[int, int]]:
    """(part number, body bytes) of each part the endpoint got, in order."""
    return [(r.part_number or 0, size) for r, size in proxy.forwarded_bodies("upload_part")]


def _sent_twice(first: list[tuple[int, int]], second: list[tuple[int, int]]) -> int:
    """Parts of the second attempt the endpoint had already got (or got twice in it)."""
    seen = {number for number, _ in first}
    twice = 0
    for number, _ in second:
        twice += number in seen
        seen.add(number)
    return twice
