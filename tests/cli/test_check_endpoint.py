"""`upload-jobs check-endpoint` against moto and a real Ceph RGW: what each does, what the
product's guarantees are worth there, exit codes, and nothing written outside its scratch
prefix (which is gone afterwards, on Ctrl-C too)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.command_line import invoke
from tests.support.ports import closed_port_url
from tests.support.s3_backends import MOTO, RGW, S3Backend
from tests.support.s3_fault_proxy import S3FaultProxy
from tests.support.settings_env import use_settings
from upload_jobs.settings import Settings
from upload_jobs.storage.endpoint_probes import SCRATCH_PREFIX
from upload_jobs.storage.spaces import make_s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REPO_ROOT = Path(__file__).resolve().parents[2]
# What each backend is measured to do (README "Which S3 endpoints"): the rows that differ.
EXPECTED = {
    MOTO: {
        "PUT If-Match, quoted": "works",
        "conditional completion": "ignored",
        "Content-MD5": "ignored",
        "aws-chunked": "works",
    },
    RGW: {
        "PUT If-Match, quoted": "refused",
        "conditional completion": "ignored",
        "Content-MD5": "works",
        "aws-chunked": "refused",
    },
}
ALIKE = {
    "PUT If-None-Match: *": "works",
    "PUT If-Match, unquoted": "works",
    "PUT If-Match, changed": "works",
    "ListParts, gone upload": "works",
    "complete, gone upload": "works",
    "SHA-256 checksum": "ignored",
    "unsigned payload": "works",
    "public-read ACL": "works",
    "metadata round trip": "works",
    "ranged GET": "works",
}


def bucket_keys(client: S3Client, bucket: str) -> list[str]:
    listed = client.list_objects_v2(Bucket=bucket)
    return sorted(item.get("Key", "") for item in listed.get("Contents", []))


def test_each_backend_is_measured_and_nothing_outside_the_scratch_prefix_changes(
    settings: Settings, s3_server: S3Backend
) -> None:
    client = make_s3_client(settings)
    client.put_object(Bucket=settings.bucket, Key="videos/keep.mp4", Body=b"a user's video")

    code, output = invoke("check-endpoint", "--json")

    report = json.loads(output)
    outcomes = {check["check"]: check["outcome"] for check in report["checks"]}
    assert outcomes == ALIKE | EXPECTED[s3_server.name]
    # Both lack something a user of AWS S3 has: moto checks no Content-MD5 and no If-Match at
    # completion, RGW no condition at completion.
    assert code == 1 and report["safe"] is False
    assert "conditional completion" in report["weaker"]
    assert report["scratch_prefix"].startswith(SCRATCH_PREFIX)
    assert bucket_keys(client, settings.bucket) == ["videos/keep.mp4"]
    assert client.list_multipart_uploads(Bucket=settings.bucket).get("Uploads", []) == []
    seen = {check["check"]: check["seen"] for check in report["checks"]}
    if s3_server.name == RGW:
        assert seen["ListParts, gone upload"].startswith("NoSuchKey (HTTP 404")
        assert seen["complete, gone upload"].startswith("InternalError (HTTP 500")


def test_the_table_says_what_each_result_means_and_which_guarantee_is_weaker(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, output = invoke("check-endpoint")

    assert code == 1 and "Traceback" not in output
    assert "conditional completion" in output and "ignored" in output
    assert "Weaker here: multipart replaces nothing unchecked" in output
    assert all(len(line) <= 80 for line in output.splitlines())


@pytest.mark.moto_only
def test_an_endpoint_where_every_guarantee_holds_exits_0(
    settings: Settings, s3_server: S3Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto, made to answer as AWS S3 documents it does: a wrong Content-MD5 refused, and a
    # conditional completion over someone else's object refused.
    wrong_md5 = base64.b64encode(hashlib.md5(b"other bytes").digest()).decode()
    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        proxy.fail_always(400, "BadDigest", header=("content-md5", wrong_md5))
        proxy.fail_always(412, "PreconditionFailed", kinds={"complete_multipart"},
                          header=("if-match", ".*"))  # fmt: skip
        use_settings(monkeypatch, endpoint_url=proxy.endpoint_url)

        code, output = invoke("check-endpoint")

    assert code == 0, output
    assert "Uploads are safe here: every guarantee holds." in output


@pytest.mark.moto_only
def test_an_endpoint_that_cannot_be_reached_or_refuses_the_key_exits_2(
    settings: Settings, s3_server: S3Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_settings(monkeypatch, endpoint_url=closed_port_url(), s3_max_attempts="1")
    code, output = invoke("check-endpoint")
    said = " ".join(output.split())  # as the terminal wrapped it
    assert code == 2 and "could not be reached" in said and "Nothing was probed" in said
    assert "Traceback" not in output

    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        proxy.fail_always(403, "InvalidAccessKeyId", message="")
        use_settings(monkeypatch, endpoint_url=proxy.endpoint_url)
        code, output = invoke("check-endpoint", "--json")
    refusal = json.loads(output)["error"]
    # A HEAD's refusal has no body: the status is all there is to say.
    assert code == 2 and "HTTP 403: Forbidden — check the access key's permissions" in refusal
    assert "Nothing was probed" in refusal


def test_ctrl_c_removes_the_scratch_objects(
    settings: Settings, s3_server: S3Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_s3_client(settings)
    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        # Held mid-way: the probes have written their first objects by then.
        proxy.slow_next(1, 30.0, kinds={"create_multipart"})
        env = dict(os.environ, UPLOAD_JOBS_ENDPOINT_URL=proxy.endpoint_url)
        process = subprocess.Popen(
            [sys.executable, "-m", "upload_jobs.cli", "check-endpoint"], cwd=REPO_ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not proxy.delayed and time.monotonic() < deadline:
            time.sleep(0.05)
        written = [r.key for r in proxy.requests if r.kind == "put_object"]
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)

    assert written, "probes had written before Ctrl-C"
    assert process.returncode == 130, output
    said = " ".join(output.split())  # as the terminal wrapped it
    assert "Stopped: interrupted by Ctrl-C (SIGINT). The scratch objects were removed" in said
    assert "Traceback" not in output
    assert bucket_keys(client, settings.bucket) == []
