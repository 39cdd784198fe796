"""What a reliability test checks after the fault: the bucket, the work dir and the sources."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import update

from tests.conftest import sha256_of
from upload_jobs.jobs.database import get_engine
from upload_jobs.jobs.models import JobStatus, UploadJob, utcnow
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings
from upload_jobs.storage.local_s3 import LocalS3Server
from upload_jobs.storage.spaces import list_open_multipart_uploads, make_s3_client

OUTCOMES_DIR = Path(__file__).resolve().parents[2] / "test-artifacts" / "reliability"


@dataclass
class Outcome:
    """The figures the README's Reliability table reports for one injected fault."""

    fault: str
    jobs: int
    completed: int
    objects_duplicated: int
    parts_left: int
    temp_files_left: int
    sources_changed: int
    details: dict[str, object] = field(default_factory=dict)

    def save(self, name: str) -> None:
        """Print the figures and keep them in test-artifacts/reliability/NAME.json."""
        OUTCOMES_DIR.mkdir(parents=True, exist_ok=True)
        text = json.dumps(asdict(self), indent=2, default=str)
        (OUTCOMES_DIR / f"{name}.json").write_text(text + "\n")
        print(f"\n{name}: {text}")


def one_job_outcome(
    fault: str,
    *,
    settings: Settings,
    server: LocalS3Server,
    job: UploadJob,
    source: Path,
    original_sha256: str,
    details: dict[str, object],
) -> Outcome:
    """The figures after a fault in one job's run (`source` held `original_sha256` before)."""
    uploads = sum(store_writes_per_key(server, settings.bucket).values())
    return Outcome(
        fault=fault,
        jobs=1,
        completed=int(job.status == JobStatus.COMPLETED),
        objects_duplicated=uploads - 1,
        parts_left=open_parts(settings),
        temp_files_left=temp_files_left(settings),
        sources_changed=int(sha256_of(source) != original_sha256),
        details={"uploads": uploads, **details},
    )


def stored_objects(settings: Settings) -> dict[str, int]:
    """Every object in the test's bucket: key -> size."""
    client = make_s3_client(settings)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket)
    return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}


def store_writes_per_key(server: LocalS3Server, bucket: str) -> Counter[str]:
    """How many uploads reached the S3 server for each key (PUTs and completed multiparts)."""
    return Counter(
        request.key
        for request in server.requests
        if request.bucket == bucket and request.kind in ("put_object", "complete_multipart")
    )


def open_parts(settings: Settings) -> int:
    """Multipart uploads left open in the bucket (each holds billed parts)."""
    return len(list_open_multipart_uploads(make_s3_client(settings), settings.bucket))


def kept_for_resume(settings: Settings, job_id: int) -> bool:
    """Whether the one multipart upload open in the bucket is the one the job's last attempt
    recorded, for its next attempt to resume."""
    open_ids = [u["UploadId"] for u in list_open_multipart_uploads(
        make_s3_client(settings), settings.bucket
    )]  # fmt: skip
    last = JobStore(settings.database_url).list_attempts(job_id)[-1]
    return open_ids == [last.multipart_upload_id]


def temp_files_left(settings: Settings) -> int:
    """Files left anywhere under the work dir."""
    work_dir = Path(settings.work_dir)
    return sum(1 for path in work_dir.rglob("*") if path.is_file()) if work_dir.exists() else 0


def sources_changed(originals: dict[Path, str]) -> int:
    """How many source files are gone or no longer hold their original bytes."""
    return sum(1 for path, digest in originals.items() if not path.is_file()
               or sha256_of(path) != digest)  # fmt: skip


def make_failed_jobs_due(database_url: str) -> None:
    """Failed jobs become due now: stands in for the wait until the next scheduled sweep."""
    with get_engine(database_url).begin() as connection:
        connection.execute(
            update(UploadJob)
            .where(UploadJob.status == JobStatus.FAILED)  # type: ignore[arg-type]
            .values(next_attempt_at=utcnow())
        )


def job_statuses(settings: Settings) -> dict[str, int]:
    """Jobs per status."""
    return JobStore(settings.database_url).count_jobs_by_status()
