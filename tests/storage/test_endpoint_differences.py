"""What Ceph RGW (Spaces' engine) does unlike AWS S3 and moto, each handled by behaviour: run
against both backends, and with the fault proxy answering as the other endpoint would, so every
case is exercised whichever backend runs it."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.s3_backends import MOTO, S3Backend
from tests.support.s3_fault_proxy import S3FaultProxy
from tests.support.uploads import MiB, settings_for, upload
from upload_jobs.errors import ErrorKind, KeyConflict, PermanentUploadError, TransientUploadError
from upload_jobs.settings import Settings
from upload_jobs.storage.ownership import KeyOwner
from upload_jobs.storage.resume import MultipartUpload
from upload_jobs.storage.spaces import ensure_bucket, list_open_multipart_uploads, make_s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

KEY = "videos/2026-12-06/merged.mp4"
PART = 5 * MiB
ONE_AT_A_TIME = {"multipart_threshold": PART, "chunk_size": PART, "concurrency": 1}
QUOTED = r'"[0-9a-f]+(-[0-9]+)?"'


@pytest.fixture(scope="module")
def long_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three parts of 5 MiB, the last one shorter."""
    path = tmp_path_factory.mktemp("long") / "long take.mp4"
    path.write_bytes(os.urandom(2 * PART + 4321))
    return path


def stored_bytes(direct: S3Client, bucket: str) -> bytes:
    return direct.get_object(Bucket=bucket, Key=KEY)["Body"].read()


def replace_own_object(client: S3Client, bucket: str, small_file: Path) -> None:
    """The job's object, then the same job's new take of it over it."""
    upload(client, bucket, small_file, KEY, owner=KeyOwner(6))
    small_file.write_bytes(os.urandom(small_file.stat().st_size))


# --- If-Match: the ETag in quotes or not -------------------------------------------------------


def test_a_jobs_own_object_is_replaced_on_every_endpoint_and_the_etag_form_is_learnt(
    client: S3Client, direct: S3Client, bucket: str, proxy: S3FaultProxy, small_file: Path
) -> None:
    # Against the backend as it is: RGW refuses the quoted form, moto takes it.
    replace_own_object(client, bucket, small_file)
    proxy.reset_counts()

    second = upload(client, bucket, small_file, KEY, owner=KeyOwner(6))
    small_file.write_bytes(os.urandom(small_file.stat().st_size))
    proxy.reset_counts()
    third = upload(client, bucket, small_file, KEY, owner=KeyOwner(6))

    assert second.replaced and third.replaced
    assert stored_bytes(direct, bucket) == small_file.read_bytes()
    assert proxy.count("put_object") == 1, "the form that works is used at once"


def test_an_endpoint_comparing_the_quotes_gets_the_etag_unquoted(
    client: S3Client,
    direct: S3Client,
    bucket: str,
    proxy: S3FaultProxy,
    small_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As RGW 16.2 answers, on any backend: 412, without a message, to a quoted If-Match.
    replace_own_object(client, bucket, small_file)
    proxy.fail_always(412, "PreconditionFailed", message="", header=("if-match", QUOTED))
    proxy.reset_counts()

    result = upload(client, bucket, small_file, KEY, owner=KeyOwner(6))

    assert result.replaced and stored_bytes(direct, bucket) == small_file.read_bytes()
    sent = [h["if-match"] for h in proxy.headers_of("put_object")]
    assert len(sent) == 2 and sent[0] == f'"{sent[1]}"', "quoted, then the same ETag unquoted"
    assert "took it without quotes" in caplog.text


def test_an_endpoint_refusing_if_match_in_both_forms_over_our_unchanged_object(
    client: S3Client,
    direct: S3Client,
    bucket: str,
    proxy: S3FaultProxy,
    small_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    replace_own_object(client, bucket, small_file)
    proxy.fail_always(412, "PreconditionFailed", message="", header=("if-match", ".*"))

    result = upload(client, bucket, small_file, KEY, owner=KeyOwner(6))

    # Every retry would fail otherwise: written after the check, the way an endpoint without
    # conditional writes gets it, and said.
    assert result.replaced and stored_bytes(direct, bucket) == small_file.read_bytes()
    assert "refuses If-Match in both ETag forms" in caplog.text
    assert [h.get("if-match") is None for h in proxy.headers_of("put_object")][-1]


def test_a_412_over_an_object_that_did_change_is_still_a_conflict(
    client: S3Client, direct: S3Client, bucket: str, proxy: S3FaultProxy, small_file: Path
) -> None:
    replace_own_object(client, bucket, small_file)
    # Between the check and the write, another writer replaces the job's object.
    proxy.slow_next(1, 1.0, kinds={"put_object"})

    def take_the_key() -> None:
        threading.Event().wait(0.3)
        direct.put_object(Bucket=bucket, Key=KEY, Body=b"written in between")

    writer = threading.Thread(target=take_the_key)
    writer.start()
    with pytest.raises(KeyConflict, match="did not upload"):
        upload(client, bucket, small_file, KEY, owner=KeyOwner(6))
    writer.join()
    assert stored_bytes(direct, bucket) == b"written in between"


# --- a kept multipart upload that is gone --------------------------------------------------------


def keep_an_upload(
    client: S3Client, bucket: str, path: Path, proxy: S3FaultProxy
) -> MultipartUpload:
    """A try stopped at part 2 with its upload recorded and kept, as Ctrl-C leaves it."""
    kept: list[MultipartUpload] = []

    def record(upload_started: MultipartUpload) -> bool:
        kept.append(upload_started)
        return True

    def press_ctrl_c(done: int) -> None:
        if done >= PART:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upload(
            client, bucket, path, KEY, on_multipart_started=record, on_progress=press_ctrl_c,
            **ONE_AT_A_TIME,
        )  # fmt: skip
    proxy.reset_counts()
    return kept[-1]


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (404, "NoSuchUpload", "The specified upload does not exist."),  # AWS S3, moto
        (404, "NoSuchKey", ""),  # Ceph RGW 16.2
        (404, "", ""),  # a bare 404
        (500, "InternalError", ""),
        (403, "AccessDenied", ""),
    ],
    ids=["NoSuchUpload", "NoSuchKey-rgw", "bare-404", "InternalError", "AccessDenied"],
)
def test_whatever_the_endpoint_says_of_a_kept_upload_the_next_try_starts_a_fresh_one(
    client: S3Client,
    direct: S3Client,
    bucket: str,
    proxy: S3FaultProxy,
    long_file: Path,
    caplog: pytest.LogCaptureFixture,
    status: int,
    code: str,
    message: str,
) -> None:
    # The rule: state the product keeps (here the upload id on the attempt) never makes every
    # retry fail the same way. Every request about the kept upload is answered like this.
    kept = keep_an_upload(client, bucket, long_file, proxy)
    proxy.fail_always(status, code, message=message, upload_id=kept.upload_id)
    caplog.set_level(logging.INFO, logger="upload_jobs")

    result = upload(client, bucket, long_file, KEY, resume=kept, **ONE_AT_A_TIME)

    assert result.parts_kept == 0 and stored_bytes(direct, bucket) == long_file.read_bytes()
    assert "starting a fresh one" in caplog.text
    proxy.clear_faults()
    direct.abort_multipart_upload(Bucket=bucket, Key=KEY, UploadId=kept.upload_id)
    assert list_open_multipart_uploads(direct, bucket) == []


def test_an_upload_gone_before_its_completion_is_sent_again_in_a_fresh_one(
    client: S3Client,
    direct: S3Client,
    bucket: str,
    proxy: S3FaultProxy,
    long_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Aborted while the completion is on its way (a sweep, a person, the endpoint's 90-day
    # expiry): RGW answers the completion 500 InternalError, S3 and moto NoSuchUpload.
    proxy.slow_next(1, 1.0, kinds={"complete_multipart"})

    aborted: list[str] = []

    def abort_meanwhile() -> None:
        deadline = time.monotonic() + 60
        while not proxy.delayed and time.monotonic() < deadline:
            time.sleep(0.02)  # until the completion is held
        held = proxy.delayed[0].upload_id or ""
        direct.abort_multipart_upload(Bucket=bucket, Key=KEY, UploadId=held)
        aborted.append(held)

    aborter = threading.Thread(target=abort_meanwhile)
    aborter.start()
    result = upload(client, bucket, long_file, KEY, **ONE_AT_A_TIME)
    aborter.join()

    assert aborted, "the held completion's upload was aborted"
    assert stored_bytes(direct, bucket) == long_file.read_bytes() and result.multipart
    assert f"Multipart upload {aborted[0]} of s3://{bucket}/{KEY} was gone" in caplog.text
    assert proxy.count("create_multipart") == 2 and proxy.count("complete_multipart") >= 2
    assert list_open_multipart_uploads(direct, bucket) == []


# --- Content-MD5 ---------------------------------------------------------------------------------


def test_every_put_and_part_carries_the_md5_of_its_bytes(
    client: S3Client, bucket: str, proxy: S3FaultProxy, small_file: Path, long_file: Path
) -> None:
    upload(client, bucket, small_file, "videos/small.mp4")
    upload(client, bucket, long_file, KEY, **ONE_AT_A_TIME)

    def md5(data: bytes) -> str:
        return base64.b64encode(hashlib.md5(data).digest()).decode()

    [put] = proxy.headers_of("put_object")
    assert put["content-md5"] == md5(small_file.read_bytes())
    data = long_file.read_bytes()
    parts = [data[offset : offset + PART] for offset in range(0, len(data), PART)]
    assert [h["content-md5"] for h in proxy.headers_of("upload_part")] == list(map(md5, parts))


def test_bytes_changed_on_the_way_are_refused_by_the_endpoint(
    client: S3Client,
    direct: S3Client,
    bucket: str,
    proxy: S3FaultProxy,
    long_file: Path,
    local_s3: S3Backend,
) -> None:
    if local_s3.name == MOTO:
        pytest.skip("moto stores a part whatever its checksums say (RGW and S3 refuse it)")
    proxy.corrupt_next(1, kinds={"upload_part"})

    # Refused (BadDigest, or the signed payload's SHA-256 first): a failure the task retries.
    with pytest.raises(TransientUploadError, match=r"(BadDigest|SHA256Mismatch) \(HTTP 400"):
        upload(client, bucket, long_file, KEY, **ONE_AT_A_TIME)
    assert proxy.statuses("upload_part")[0] == 400
    assert list_open_multipart_uploads(direct, bucket) == []

    upload(client, bucket, long_file, KEY, **ONE_AT_A_TIME)
    assert stored_bytes(direct, bucket) == long_file.read_bytes()


# --- messages and buckets ------------------------------------------------------------------------


def test_a_refusal_without_a_message_still_reads_as_a_sentence(
    client: S3Client, bucket: str, proxy: S3FaultProxy, small_file: Path
) -> None:
    proxy.fail_always(400, "InvalidArgument", message="", kinds={"put_object"})

    with pytest.raises(PermanentUploadError) as refused:
        upload(client, bucket, small_file, "videos/a.mp4")

    assert refused.value.error_kind is ErrorKind.UPLOAD_PERMANENT
    assert str(refused.value) == (
        f"Upload to bucket '{bucket}' failed: InvalidArgument (HTTP 400: the service refused an "
        "argument of the request) — a retry will not help; `upload-jobs check-endpoint` shows "
        "what this endpoint supports"
    )


def test_a_bucket_is_made_where_the_endpoint_refuses_the_region_as_its_location(
    proxy: S3FaultProxy, caplog: pytest.LogCaptureFixture, local_s3: S3Backend
) -> None:
    # RGW's default zonegroup refuses nyc3 (and us-east-1), as a Space may.
    if local_s3.name == MOTO:
        pytest.skip("moto, like AWS, takes the signing region as a location and insists on it")
    caplog.set_level(logging.INFO, logger="upload_jobs")
    client = make_s3_client(settings_for(proxy.endpoint_url, "unused"))
    name = f"videos-{os.urandom(6).hex()}"

    ensure_bucket(client, name)

    assert client.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "refuses nyc3 as a bucket location" in caplog.text


@pytest.mark.parametrize("region", ["us-east-1", "nyc3"])
def test_a_bucket_is_made_in_the_signing_region_or_the_default_one(
    proxy: S3FaultProxy, region: str
) -> None:
    settings = Settings(bucket="unused", endpoint_url=proxy.endpoint_url, region=region)
    client = make_s3_client(settings)
    name = f"videos-{os.urandom(6).hex()}"

    ensure_bucket(client, name)
    ensure_bucket(client, name)  # there already: nothing to do

    assert client.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    created = proxy.statuses("other")
    assert created.count(200) == 1 and len(created) <= 2, "once, or once more without a region"
