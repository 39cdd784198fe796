"""`python -m bench.rclone_peer PLAN.json`: the peer a user would pick for the upload alone,
rclone (Debian's package) copying the same sources to the same endpoint with the same
concurrency and part size; no streaming optimization. Writes rclone's own peak RSS and exit code
beside the plan (`rclone.json`): the work is rclone's, not this wrapper's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REMOTE = "bench"


def rclone_command(plan: dict[str, Any], files_from: Path) -> list[str]:
    """`rclone copy` of the plan's files from their folder to `bench:BUCKET/PREFIX`."""
    return [
        shutil.which("rclone") or "rclone", "copy", plan["source_dir"],
        f"{REMOTE}:{plan['bucket']}/{plan['prefix']}", "--files-from", str(files_from),
        "--no-traverse", "--transfers", str(plan["concurrency"]),
        "--s3-upload-cutoff", f"{plan['multipart_threshold_bytes']}B",
        "--s3-chunk-size", f"{plan['multipart_chunk_bytes']}B",  # bytes, not KiB
        "--s3-upload-concurrency", str(plan["parts_in_flight"]),
        "--s3-no-check-bucket", "--retries", "1", "--low-level-retries", "3",
        # After a multipart upload rclone HEADs the object with the version id the completion
        # gave, which moto gives as "null" and then answers 400: no HEAD after uploading (the
        # completion's answer is trusted), on either server. A HEADs after; C is the lighter.
        "--s3-no-head",
    ]  # fmt: skip


def rclone_environment(plan: dict[str, Any]) -> dict[str, str]:
    """The remote `bench:` as environment variables (no rclone.conf written)."""
    prefix = f"RCLONE_CONFIG_{REMOTE.upper()}_"
    # rclone's AWS SDK refuses AWS_CA_BUNDLE with its own HTTP transport ("unable to load custom
    # CA bundle"); rclone takes CAs with --ca-cert, and loopback HTTP needs none.
    inherited = {name: value for name, value in os.environ.items() if name != "AWS_CA_BUNDLE"}
    return {
        **inherited,
        f"{prefix}TYPE": "s3",
        f"{prefix}PROVIDER": "Ceph",
        f"{prefix}ENDPOINT": plan["endpoint"],
        f"{prefix}ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", ""),
        f"{prefix}SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        f"{prefix}REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        f"{prefix}FORCE_PATH_STYLE": "true",
    }


def main() -> int:
    """Run rclone over the plan; its exit code."""
    plan_path = Path(sys.argv[1])
    plan = json.loads(plan_path.read_text())
    files_from = plan_path.with_name("files-from.txt")
    files_from.write_text("".join(f"{name}\n" for name in plan["files"]))
    process = subprocess.Popen(rclone_command(plan, files_from), env=rclone_environment(plan))
    _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage, not all children's
    process.returncode = os.waitstatus_to_exitcode(status)
    peak = usage.ru_maxrss * 1024  # KiB on Linux
    result = {"peak_rss_bytes": peak, "exit_code": process.returncode}
    plan_path.with_name("rclone.json").write_text(json.dumps(result))
    return process.returncode


if __name__ == "__main__":
    sys.exit(main())
