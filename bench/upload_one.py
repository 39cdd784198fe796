"""`python -m bench.upload_one PLAN.json`: the CLI benchmark's raw baseline, one job by hand.

A Python process that imports boto3, runs the ffmpeg remux `upload-jobs retry` would run (the
argument list comes in the plan, built by the project's own function, so nothing of the project
is imported here), uploads the output with one PUT and deletes it. No Prefect, no database, no
checks: the least a script doing the same job can do.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
from botocore.config import Config


def main() -> None:
    """Remux and upload the one file of the plan; a failure exits non-zero."""
    plan = json.loads(Path(sys.argv[1]).read_text())
    subprocess.run(plan["ffmpeg_args"], capture_output=True, check=True)
    output = Path(plan["output"])
    # The client options the project uses for Spaces (S3-compatible stores).
    config = Config(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"mode": "standard", "total_max_attempts": 3},
    )
    client = boto3.client(
        "s3", endpoint_url=plan["endpoint_url"], region_name="us-east-1", config=config
    )
    with output.open("rb") as body:
        client.put_object(
            Bucket=plan["bucket"], Key=plan["key"], Body=body, ContentType="video/mp4"
        )
    output.unlink()


if __name__ == "__main__":
    main()
