"""Spaces uploads against moto's S3 over real HTTP, with a fault-injecting proxy in between."""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import urllib3.exceptions
from botocore import exceptions as bce

from tests.support.s3_backends import S3Backend
from tests.support.s3_fault_proxy import S3FaultProxy
from tests.support.uploads import CACHE, SECRET, MiB, settings_for, upload
from upload_jobs.errors import (
    ErrorKind,
    PermanentUploadError,
    TransientUploadError,
    UploadVerificationFailed,
)
from upload_jobs.settings import Settings
from upload_jobs.storage.local_s3 import LocalS3Server
from upload_jobs.storage.objects import find_existing_object
from upload_jobs.storage.resume import BodyDigests
from upload_jobs.storage.spaces import (
    UploadResult,
    abort_stale_multipart_uploads,
    classify_upload_error,
    ensure_bucket,
    file_sha256,
    list_open_multipart_uploads,
    make_s3_client,
    public_url,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
MULTIPART = {"multipart_threshold": 5 * MiB, "chunk_size": 5 * MiB}
UPLOAD_KINDS = ("put_object", "upload_part", "create_multipart", "complete_multipart")


def uploads_sent(proxy: S3FaultProxy) -> int:
    return sum(proxy.count(kind) for kind in UPLOAD_KINDS)


def is_public_read(direct: S3Client, bucket: str, key: str) -> bool:
    grants = direct.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    return any(g["Grantee"].get("URI") == ALL_USERS and g["Permission"] == "READ" for g in grants)


# --- uploads that work -------------------------------------------------------------------------


def test_small_file_is_one_put_with_headers_acl_and_checksum(
    client: S3Client,
    direct: S3Client,
    bucket: str,
    proxy: S3FaultProxy,
    small_file: Path,
    local_s3: S3Backend,
) -> None:
    progress: list[int] = []
    result = upload(
        client, bucket, small_file, "videos/small clip é.mp4", on_progress=progress.append
    )

    data = small_file.read_bytes()
    assert result == UploadResult(
        key="videos/small clip é.mp4",
        size_bytes=len(data),
        etag=hashlib.md5(data).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
        multipart=False,
        skipped_existing=False,
        bytes_sent=len(data),
    )
    assert progress == [len(data)]
    head = direct.head_object(Bucket=bucket, Key=result.key)
    assert head["ContentType"] == "video/mp4"
    assert head["CacheControl"] == CACHE
    assert head["Metadata"] == {"sha256": result.sha256, "upload-job-id": "1"}
    assert head["ContentLength"] == len(data)
    assert is_public_read(direct, bucket, result.key)
    assert proxy.count("put_object") == 1
    assert proxy.count("create_multipart") == 0
    assert local_s3.count("put_object", key=result.key) == 1
    # No aws-chunked body or CRC trailer: S3-compatible stores have choked on them.
    (put_headers,) = proxy.headers_of("put_object")
    assert "aws-chunked" not in put_headers.get("content-encoding", "")
    assert not [
        name for name in put_headers if name.startswith(("x-amz-checksum", "x-amz-trailer"))
    ]


def test_large_file_goes_multipart_and_round_trips(
    client: S3Client, direct: S3Client, bucket: str, proxy: S3FaultProxy, big_file: Path
) -> None:
    progress: list[int] = []
    result = upload(
        client,
        bucket,
        big_file,
        "videos/big.mp4",
        on_progress=progress.append,
        concurrency=3,
        **MULTIPART,
    )

    size = big_file.stat().st_size
    assert result.multipart and not result.skipped_existing
    assert result.size_bytes == size
    assert result.etag.endswith("-3")
    assert proxy.count("upload_part") == 3
    assert proxy.count("create_multipart") == proxy.count("complete_multipart") == 1
    assert proxy.count("put_object") == 0
    assert sorted(progress) == progress and progress[-1] == size and len(progress) == 3
    body = direct.get_object(Bucket=bucket, Key=result.key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == result.sha256 == file_sha256(big_file)
    head = direct.head_object(Bucket=bucket, Key=result.key)
    assert head["Metadata"] == {"sha256": result.sha256, "upload-job-id": "1"}
    assert (head["ContentType"], head["CacheControl"]) == ("video/mp4", CACHE)
    assert is_public_read(direct, bucket, result.key)
    assert list_open_multipart_uploads(direct, bucket) == []


def test_identical_reupload_is_skipped_without_any_put(
    client: S3Client, bucket: str, proxy: S3FaultProxy, small_file: Path
) -> None:
    first = upload(client, bucket, small_file, "videos/a.mp4")
    proxy.reset_counts()

    again = upload(client, bucket, small_file, "videos/a.mp4", digests=BodyDigests(first.sha256))

    assert again.skipped_existing and again.etag == first.etag and again.sha256 == first.sha256
    assert uploads_sent(proxy) == 0
    assert proxy.count("head") == 1


def test_changed_file_under_same_key_is_uploaded_again_with_all_headers(
    client: S3Client, direct: S3Client, bucket: str, proxy: S3FaultProxy, small_file: Path
) -> None:
    first = upload(client, bucket, small_file, "videos/a.mp4")
    small_file.write_bytes(os.urandom(200_000))  # same size: only the checksum tells them apart
    proxy.reset_counts()

    second = upload(client, bucket, small_file, "videos/a.mp4")

    assert not second.skipped_existing and second.sha256 != first.sha256
    assert proxy.stored("put_object") == 1
    head = direct.head_object(Bucket=bucket, Key="videos/a.mp4")
    assert head["Metadata"] == {"sha256": second.sha256, "upload-job-id": "1"}
    assert (head["ContentType"], head["CacheControl"]) == ("video/mp4", CACHE)
    assert is_public_read(direct, bucket, "videos/a.mp4")


def test_same_bytes_with_new_cache_control_are_uploaded_again(
    client: S3Client, direct: S3Client, bucket: str, proxy: S3FaultProxy, small_file: Path
) -> None:
    upload(client, bucket, small_file, "videos/a.mp4")
    proxy.reset_counts()

    result = upload(client, bucket, small_file, "videos/a.mp4", cache_control="max-age=60")

    assert not result.skipped_existing
    assert proxy.stored("put_object") == 1
    assert direct.head_object(Bucket=bucket, Key="videos/a.mp4")["CacheControl"] == "max-age=60"


def test_find_existing_object(client: S3Client, bucket: str, small_file: Path) -> None:
    assert find_existing_object(client, bucket, "videos/none.mp4") is None
    result = upload(client, bucket, small_file, "videos/a.mp4")
    found = find_existing_object(client, bucket, "videos/a.mp4")
    assert found is not None
    assert (found.size_bytes, found.etag, found.sha256) == (
        result.size_bytes,
        result.etag,
        result.sha256,
    )
    assert (found.content_type, found.cache_control) == ("video/mp4", CACHE)


def test_ensure_bucket_is_idempotent(direct: S3Client) -> None:
    name = f"videos-{uuid.uuid4().hex[:12]}"
    ensure_bucket(direct, name)
    ensure_bucket(direct, name)
    assert direct.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200


# --- failures ----------------------------------------------------------------------------------


def test_missing_bucket_is_permanent_and_not_retried(proxy: S3FaultProxy, small_file: Path) -> None:
    client = make_s3_client(settings_for(proxy.endpoint_url, "no-such-bucket-here"))
    with pytest.raises(PermanentUploadError) as caught:
        upload(client, "no-such-bucket-here", small_file, "videos/a.mp4")

    # moto says what the code means, RGW sends no message: either way one sentence.
    message = str(caught.value)
    assert message.startswith(
        "Upload to bucket 'no-such-bucket-here' failed: NoSuchBucket (HTTP 404: "
    )
    assert message.lower().endswith("bucket does not exist) — check upload_jobs_bucket")
    assert isinstance(caught.value.__cause__, bce.ClientError)
    assert caught.value.error_kind is ErrorKind.UPLOAD_PERMANENT
    assert proxy.count("put_object") == 1


def test_throttling_is_retried_by_botocore_until_it_passes(
    client: S3Client, bucket: str, proxy: S3FaultProxy, small_file: Path
) -> None:
    proxy.fail_next(2, 503, "SlowDown", methods={"PUT"})

    result = upload(client, bucket, small_file, "videos/a.mp4")

    assert result.size_bytes == small_file.stat().st_size
    assert proxy.count("put_object") == 3
    assert len(proxy.faulted) == 2


def test_throttling_beyond_max_attempts_is_transient(
    client: S3Client, bucket: str, proxy: S3FaultProxy, small_file: Path
) -> None:
    proxy.fail_next(10, 503, "SlowDown", methods={"PUT"})

    with pytest.raises(TransientUploadError, match=r"SlowDown .* after 3 attempts"):
        upload(client, bucket, small_file, "videos/a.mp4")

    # s3_max_attempts=3 means three requests in all, not three retries.
    assert proxy.count("put_object") == 3


def test_refused_part_aborts_the_multipart_upload(
    client: S3Client, direct: S3Client, bucket: str, proxy: S3FaultProxy, big_file: Path
) -> None:
    proxy.fail_always(403, "AccessDenied", kinds={"upload_part"}, min_part_number=2)

    with pytest.raises(PermanentUploadError, match="AccessDenied"):
        upload(client, bucket, big_file, "videos/big.mp4", **MULTIPART)

    assert proxy.count("abort_multipart") == 1
    assert proxy.count("complete_multipart") == 0
    assert list_open_multipart_uploads(direct, bucket) == []
    assert find_existing_object(direct, bucket, "videos/big.mp4") is None


def test_dropped_connections_during_parts_abort_the_upload(
    proxy: S3FaultProxy, direct: S3Client, bucket: str, big_file: Path
) -> None:
    client = make_s3_client(settings_for(proxy.endpoint_url, bucket, s3_max_attempts=2))
    proxy.fail_always(kinds={"upload_part"}, min_part_number=2, drop_connection=True)

    with pytest.raises(TransientUploadError, match="ConnectionClosedError"):
        upload(client, bucket, big_file, "videos/big.mp4", concurrency=1, **MULTIPART)

    assert proxy.count("abort_multipart") == 1
    assert list_open_multipart_uploads(direct, bucket) == []
    # Each dropped part was sent twice (s3_max_attempts=2) before giving up.
    part_two = [r for r in proxy.requests if r.kind == "upload_part" and r.part_number == 2]
    assert len(part_two) == 2


def test_interrupt_during_multipart_still_aborts(
    client: S3Client, direct: S3Client, bucket: str, proxy: S3FaultProxy, big_file: Path
) -> None:
    def interrupt(_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upload(client, bucket, big_file, "videos/big.mp4", on_progress=interrupt, **MULTIPART)

    # A part still in flight can make moto fail the first abort (500): it is tried again.
    assert proxy.count("abort_multipart") >= 1 and proxy.count("complete_multipart") == 0
    assert list_open_multipart_uploads(direct, bucket) == []


def test_failed_abort_keeps_the_original_error_and_the_sweep_cleans_up(
    client: S3Client,
    direct: S3Client,
    bucket: str,
    proxy: S3FaultProxy,
    big_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy.fail_always(403, "AccessDenied", kinds={"upload_part"}, min_part_number=2)
    proxy.fail_always(500, "InternalError", kinds={"abort_multipart"})
    caplog.set_level(logging.WARNING, logger="upload_jobs")

    with pytest.raises(PermanentUploadError, match="AccessDenied"):
        upload(client, bucket, big_file, "videos/big.mp4", **MULTIPART)

    assert "Could not abort multipart upload" in caplog.text
    left = list_open_multipart_uploads(direct, bucket, prefix="videos/")
    assert [u["Key"] for u in left] == ["videos/big.mp4"]
    # moto reports every upload as initiated on 2010-11-10, so "recent" must reach back further.
    recent = abort_stale_multipart_uploads(direct, bucket, older_than=timedelta(days=36500))
    assert recent.aborted == 0
    assert abort_stale_multipart_uploads(direct, bucket, older_than=timedelta(0)).aborted == 1
    assert list_open_multipart_uploads(direct, bucket) == []


def test_object_changed_behind_our_back_fails_verification(
    client: S3Client, direct: S3Client, bucket: str, small_file: Path
) -> None:
    def overwrite(_: int) -> None:
        # Another writer replaces the object between our PUT and our verifying HEAD.
        direct.put_object(Bucket=bucket, Key="videos/a.mp4", Body=b"not the video")

    with pytest.raises(
        UploadVerificationFailed, match=r"now holds a file upload-jobs did not upload \(13 bytes"
    ):
        upload(client, bucket, small_file, "videos/a.mp4", on_progress=overwrite)


def test_missing_credentials_are_permanent(
    monkeypatch: pytest.MonkeyPatch, proxy: S3FaultProxy, bucket: str, small_file: Path
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    client = make_s3_client(settings_for(proxy.endpoint_url, bucket))

    with pytest.raises(PermanentUploadError, match="no credentials found: set AWS_ACCESS_KEY_ID"):
        upload(client, bucket, small_file, "videos/a.mp4")
    assert proxy.requests == []


def test_secret_never_reaches_our_logs_or_error_messages(
    client: S3Client,
    proxy: S3FaultProxy,
    bucket: str,
    small_file: Path,
    big_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="upload_jobs")
    upload(client, bucket, small_file, "videos/a.mp4")
    messages: list[str] = []
    proxy.fail_always(403, "SignatureDoesNotMatch", message=f"echoed {SECRET}", methods={"PUT"})
    proxy.fail_always(500, "InternalError", kinds={"abort_multipart"})
    for path in (small_file, big_file):
        with pytest.raises(PermanentUploadError) as caught:
            upload(client, bucket, path, "videos/b.mp4", **MULTIPART)
        messages += [str(caught.value), repr(caught.value)]
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("upload_jobs")]

    assert any("Uploaded s3://" in m for m in ours)  # the capture did see our logs
    assert any("Could not abort" in m for m in ours)
    assert all(SECRET not in m for m in ours + messages)
    assert all("***" in m for m in messages)


# --- plain functions ---------------------------------------------------------------------------


def test_client_config_avoids_checksum_trailers_and_counts_attempts(proxy: S3FaultProxy) -> None:
    settings = settings_for(proxy.endpoint_url, "b", s3_max_attempts=5, upload_concurrency=8)
    config: Any = make_s3_client(settings).meta.config  # botocore sets these dynamically
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    assert config.retries == {"mode": "standard", "total_max_attempts": 5}
    assert config.max_pool_connections == 64  # shared by every upload of the process
    assert (config.connect_timeout, config.read_timeout) == (10, 60)


def test_clients_are_shared_until_the_endpoint_or_credentials_change(
    monkeypatch: pytest.MonkeyPatch, proxy: S3FaultProxy
) -> None:
    settings = settings_for(proxy.endpoint_url, "b")
    first = make_s3_client(settings)

    assert make_s3_client(settings) is first
    assert make_s3_client(settings_for(proxy.endpoint_url + "/", "b")) is not first
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "rotated-secret-for-the-test")
    rotated = make_s3_client(settings)
    assert rotated is not first
    assert rotated.meta.config.retries == first.meta.config.retries  # type: ignore[attr-defined]
    frozen = rotated._request_signer._credentials.get_frozen_credentials()  # type: ignore[attr-defined]
    assert frozen.secret_key == "rotated-secret-for-the-test"


def test_public_url_quotes_the_key_but_keeps_slashes() -> None:
    settings = Settings(bucket="media", region="ams3", public_base_url=None)
    assert public_url(settings, "videos/my clip é#1.mp4") == (
        "https://media.ams3.cdn.digitaloceanspaces.com/videos/my%20clip%20%C3%A9%231.mp4"
    )
    custom = Settings(public_base_url="https://cdn.example.com/")
    assert public_url(custom, "videos/a.mp4") == "https://cdn.example.com/videos/a.mp4"


def test_file_sha256_matches_hashlib_across_chunk_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    data = os.urandom(10_000)
    path.write_bytes(data)
    assert file_sha256(path, chunk_size=333) == hashlib.sha256(data).hexdigest()


def client_error(code: str, status: int, message: str = "msg", retries: int = 0) -> bce.ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retries},
    }
    return bce.ClientError(response, "PutObject")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("AccessDenied", 403),
        ("NoSuchBucket", 404),
        ("InvalidAccessKeyId", 403),
        ("SignatureDoesNotMatch", 403),
        ("InvalidBucketName", 400),
        ("AllAccessDisabled", 403),
        ("AccountProblem", 403),
        ("NotImplemented", 501),
        ("InvalidArgument", 400),
        ("403", 403),
        ("404", 404),
        ("400", 400),
        ("", 409),
    ],
)
def test_permanent_client_errors(code: str, status: int) -> None:
    error = classify_upload_error(client_error(code, status), bucket="b")
    assert isinstance(error, PermanentUploadError)
    assert str(error).startswith("Upload to bucket 'b' failed: ")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("SlowDown", 503),
        ("Throttling", 400),
        ("ThrottlingException", 400),
        ("RequestTimeout", 400),
        ("RequestTimeTooSkewed", 403),
        ("InternalError", 500),
        ("ServiceUnavailable", 503),
        ("NoSuchUpload", 404),
        ("503", 503),
        ("502", 502),
        ("500", 500),
        ("429", 429),
        ("TooManyRequests", 429),
        ("", 504),
    ],
)
def test_transient_client_errors(code: str, status: int) -> None:
    assert isinstance(classify_upload_error(client_error(code, status)), TransientUploadError)


@pytest.mark.parametrize(
    "exc",
    [
        bce.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        bce.ConnectionClosedError(endpoint_url="http://127.0.0.1:9"),
        bce.ReadTimeoutError(endpoint_url="http://127.0.0.1:9"),
        bce.ConnectTimeoutError(endpoint_url="http://127.0.0.1:9"),
        urllib3.exceptions.ProtocolError("Connection aborted."),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError("timed out"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_network_errors_are_transient(exc: BaseException) -> None:
    error = classify_upload_error(exc, bucket="b")
    assert isinstance(error, TransientUploadError)
    assert "UPLOAD_JOBS_ENDPOINT_URL" in str(error)


@pytest.mark.parametrize(
    "exc",
    [bce.NoCredentialsError(), bce.PartialCredentialsError(provider="env", cred_var="AWS_X")],
    ids=lambda exc: type(exc).__name__,
)
def test_credential_errors_are_permanent(exc: BaseException) -> None:
    error = classify_upload_error(exc)
    assert isinstance(error, PermanentUploadError)
    assert "no credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile" in str(
        error
    )


def test_classified_message_reads_for_people() -> None:
    error = classify_upload_error(client_error("SlowDown", 503, "Reduce your rate", 2), bucket="b")
    assert str(error) == (
        "Upload to bucket 'b' failed: SlowDown (HTTP 503: Reduce your rate) after 3 attempts "
        "— retrying may help"
    )


def test_classified_message_redacts_a_secret_echoed_by_the_server() -> None:
    # The client that sent the request read the secret; a server can only echo what it got.
    make_s3_client(Settings(endpoint_url="http://127.0.0.1:9"))
    error = classify_upload_error(client_error("SignatureDoesNotMatch", 403, f"got {SECRET}"))
    assert SECRET not in str(error)
    assert "got ***" in str(error)


@pytest.mark.moto_only
def test_local_s3_server_counts_per_key_and_keeps_access_logs_quiet(
    direct: S3Client, bucket: str, local_s3: S3Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="werkzeug")
    local_s3.reset_counts()
    direct.put_object(Bucket=bucket, Key="videos/x y.mp4", Body=b"1")
    direct.put_object(Bucket=bucket, Key="videos/x y.mp4", Body=b"2")
    direct.head_object(Bucket=bucket, Key="videos/x y.mp4")

    assert local_s3.count("put_object", key="videos/x y.mp4") == 2
    assert local_s3.counts(key="videos/x y.mp4") == {("PUT", "put_object"): 2, ("HEAD", "head"): 1}
    assert not [r for r in caplog.records if r.name == "werkzeug"]


def test_local_s3_server_stops_and_frees_its_port() -> None:
    server = LocalS3Server().start()
    url = server.endpoint_url
    server.stop()
    server.stop()  # twice is fine
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.endpoint_url
    with pytest.raises(bce.EndpointConnectionError):
        make_s3_client(settings_for(url, "b", s3_max_attempts=1)).list_buckets()
