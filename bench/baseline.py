"""`python -m bench.baseline PLAN.json`: the raw baseline, what a careful shell loop would do.

For each job, at the sweep's concurrency: run the same ffmpeg remux the project would run, upload
the output with boto3's managed transfer (same client config, threshold, chunk size and part
concurrency as the project's settings), delete the output. No Prefect, no database, no checks of
the source or the output, no sha256, no HEAD before or after.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig

from upload_jobs.settings import get_settings
from upload_jobs.storage.spaces import VIDEO_CONTENT_TYPE, make_s3_client


def main() -> None:
    """Remux and upload every job of the plan; exit 1 on the first failure."""
    plan = json.loads(Path(sys.argv[1]).read_text())
    settings = get_settings()
    client = make_s3_client(settings)
    transfer = TransferConfig(
        multipart_threshold=settings.multipart_threshold_bytes,
        multipart_chunksize=settings.multipart_chunk_bytes,
        max_concurrency=settings.upload_concurrency,
    )
    extra = {"ContentType": VIDEO_CONTENT_TYPE, "CacheControl": settings.cache_control}
    extra |= {"ACL": settings.acl} if settings.acl else {}

    def remux_and_upload(job: dict[str, Any]) -> None:
        # The project reads ffmpeg's -progress output from stdout; so does this.
        subprocess.run(job["ffmpeg_args"], capture_output=True, check=True)
        output = Path(job["output"])
        client.upload_file(
            str(output), settings.bucket, job["key"], Config=transfer, ExtraArgs=extra
        )
        output.unlink()

    with ThreadPoolExecutor(max_workers=plan["concurrency"]) as pool:
        list(pool.map(remux_and_upload, plan["jobs"]))


if __name__ == "__main__":
    main()
