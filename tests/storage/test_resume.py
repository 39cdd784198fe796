"""Multipart uploads that resume: a try stopped by a transient failure or an interruption keeps
its recorded upload, and the next try for the same bytes sends only the parts not stored."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.s3_fault_proxy import S3FaultProxy
from tests.support.uploads import MiB, settings_for, upload
from upload_jobs.errors import PermanentUploadError, TransientUploadError
from upload_jobs.storage.resume import MultipartUpload
from upload_jobs.storage.spaces import list_open_multipart_uploads, make_s3_client
from upload_jobs.storage.upload_body import UploadBody

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PART = 5 * MiB
ONE_AT_A_TIME = {"multipart_threshold": PART, "chunk_size": PART, "concurrency": 1}
KEY = "videos/long take.mp4"


@pytest.fixture
def client(proxy: S3FaultProxy, bucket: str) -> S3Client:
    """A run's client through the proxy, without botocore's own retries: a refused part fails
    the try at once (the task's retries are the next tries here)."""
    return make_s3_client(settings_for(proxy.endpoint_url, bucket, s3_max_attempts=1))


@pytest.fixture(scope="module")
def long_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six parts of 5 MiB, the last one shorter."""
    path = tmp_path_factory.mktemp("long") / "long take.mp4"
    path.write_bytes(os.urandom(5 * PART + 4321))
    return path


class Recorder:
    """What a run records on its attempt row: the multipart upload, before its first part."""

    def __init__(self) -> None:
        self.uploads: list[MultipartUpload] = []

    def __call__(self, upload: MultipartUpload) -> bool:
        self.uploads.append(upload)
        return True

    @property
    def last(self) -> MultipartUpload:
        return self.uploads[-1]


def parts_sent(proxy: S3FaultProxy) -> list[int]:
    """The part numbers the endpoint was sent (and did not refuse), in order."""
    refused = {id(r) for r in proxy.faulted}
    return [
        r.part_number or 0
        for r in proxy.requests
        if r.kind == "upload_part" and id(r) not in refused
    ]


def stop_at_part(
    proxy: S3FaultProxy, client: S3Client, bucket: str, path: Path, number: int
) -> Recorder:
    """An upload whose part `number` keeps failing with 503 SlowDown: stopped, kept, recorded."""
    recorder = Recorder()
    proxy.fail_always(503, "SlowDown", kinds={"upload_part"}, min_part_number=number)
    with pytest.raises(TransientUploadError, match="SlowDown"):
        upload(client, bucket, path, KEY, on_multipart_started=recorder, **ONE_AT_A_TIME)
    proxy.clear_faults()
    proxy.reset_counts()
    return recorder


def test_a_transient_failure_keeps_the_upload_and_the_next_try_sends_only_the_rest(
    client: S3Client, direct: S3Client, bucket: str, proxy: S3FaultProxy, long_file: Path
) -> None:
    recorder = stop_at_part(proxy, client, bucket, long_file, 5)
    [kept] = list_open_multipart_uploads(direct, bucket)
    assert kept["UploadId"] == recorder.last.upload_id
    assert recorder.last.size_bytes == long_file.stat().st_size and recorder.last.part_bytes == PART

    result = upload(
        client, bucket, long_file, KEY, resume=recorder.last, on_multipart_started=recorder,
        **ONE_AT_A_TIME,
    )  # fmt: skip

    assert parts_sent(proxy) == [5, 6]
    assert (result.parts_kept, result.bytes_sent) == (4, PART + 4321)
    assert proxy.count("create_multipart") == 0 and recorder.last.upload_id == kept["UploadId"]
    stored = direct.get_object(Bucket=bucket, Key=KEY)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(long_file.read_bytes()).hexdigest()
    assert list_open_multipart_uploads(direct, bucket) == []


def test_a_stored_part_with_other_bytes_is_sent_again(
    client: S3Client, direct: S3Client, bucket: str, proxy: S3FaultProxy, long_file: Path
) -> None:
    recorder = stop_at_part(proxy, client, bucket, long_file, 4)
    # Part 2 on the endpoint now holds other bytes of the same length (its ETag no longer
    # matches the MD5 of the file's span).
    direct.upload_part(
        Bucket=bucket, Key=KEY, UploadId=recorder.last.upload_id, PartNumber=2,
        Body=os.urandom(PART),
    )  # fmt: skip

    result = upload(client, bucket, long_file, KEY, resume=recorder.last, **ONE_AT_A_TIME)

    assert parts_sent(proxy) == [2, 4, 5, 6] and result.parts_kept == 2
    stored = direct.get_object(Bucket=bucket, Key=KEY)["Body"].read()
    assert stored == long_file.read_bytes()


def test_other_bytes_abort_the_old_upload_and_start_afresh(
    client: S3Client,
    direct: S3Client,
    bucket: str,
    proxy: S3FaultProxy,
    long_file: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = stop_at_part(proxy, client, bucket, long_file, 3)
    changed = tmp_path / "re-encoded.mp4"
    changed.write_bytes(os.urandom(long_file.stat().st_size))
    caplog.set_level(logging.INFO, logger="upload_jobs")

    result = upload(client, bucket, changed, KEY, resume=recorder.last, **ONE_AT_A_TIME)

    assert "it was started for other bytes" in caplog.text and "starting a fresh one" in caplog.text
    assert parts_sent(proxy) == [1, 2, 3, 4, 5, 6] and result.parts_kept == 0
    assert proxy.count("abort_multipart") == 1 and proxy.count("create_multipart") == 1
    assert direct.get_object(Bucket=bucket, Key=KEY)["Body"].read() == changed.read_bytes()
    assert list_open_multipart_uploads(direct, bucket) == []


def test_an_upload_that_is_gone_is_replaced_by_a_fresh_one(
    client: S3Client, direct: S3Client, bucket: str, proxy: S3FaultProxy, long_file: Path
) -> None:
    recorder = stop_at_part(proxy, client, bucket, long_file, 3)
    direct.abort_multipart_upload(Bucket=bucket, Key=KEY, UploadId=recorder.last.upload_id)

    result = upload(client, bucket, long_file, KEY, resume=recorder.last, **ONE_AT_A_TIME)

    assert parts_sent(proxy) == [1, 2, 3, 4, 5, 6] and result.parts_kept == 0
    assert direct.get_object(Bucket=bucket, Key=KEY)["ContentLength"] == long_file.stat().st_size


def test_a_permanent_failure_aborts_even_a_recorded_upload(
    client: S3Client, direct: S3Client, bucket: str, proxy: S3FaultProxy, long_file: Path
) -> None:
    proxy.fail_always(403, "AccessDenied", kinds={"upload_part"}, min_part_number=3)
    with pytest.raises(PermanentUploadError):
        upload(client, bucket, long_file, KEY, on_multipart_started=Recorder(), **ONE_AT_A_TIME)
    assert list_open_multipart_uploads(direct, bucket) == []


def test_an_unrecorded_upload_is_aborted_even_after_a_transient_failure(
    client: S3Client, direct: S3Client, bucket: str, proxy: S3FaultProxy, long_file: Path
) -> None:
    proxy.fail_always(503, "SlowDown", kinds={"upload_part"}, min_part_number=3)
    with pytest.raises(TransientUploadError):
        # The attempt row could not be written: nothing could find the upload again.
        upload(
            client, bucket, long_file, KEY, on_multipart_started=lambda _: False, **ONE_AT_A_TIME
        )
    assert list_open_multipart_uploads(direct, bucket) == []


def test_an_interruption_keeps_the_upload_for_the_next_try(
    client: S3Client, direct: S3Client, bucket: str, proxy: S3FaultProxy, long_file: Path
) -> None:
    recorder = Recorder()

    def press_ctrl_c(done: int) -> None:
        if done >= 2 * PART:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upload(
            client, bucket, long_file, KEY, on_multipart_started=recorder,
            on_progress=press_ctrl_c, **ONE_AT_A_TIME,
        )  # fmt: skip
    assert [u["UploadId"] for u in list_open_multipart_uploads(direct, bucket)] == [
        recorder.last.upload_id
    ]
    proxy.reset_counts()

    result = upload(client, bucket, long_file, KEY, resume=recorder.last, **ONE_AT_A_TIME)

    # Parts 1 and 2 had landed; a third may have been in flight when Ctrl-C came.
    assert result.parts_kept >= 2 and parts_sent(proxy)[-1] == 6
    assert direct.get_object(Bucket=bucket, Key=KEY)["Body"].read() == long_file.read_bytes()


def test_a_body_of_pieces_resumes_like_a_file(
    client: S3Client, direct: S3Client, bucket: str, proxy: S3FaultProxy, long_file: Path
) -> None:
    # What the in-process faststart sends: bytes made in memory between ranges of the source.
    size = long_file.stat().st_size
    whole = UploadBody.of_file(long_file)
    body = UploadBody(
        long_file,
        (b"made in memory " * 1000, *whole.pieces),
        whole.identity,
        "a body of pieces",
    )
    recorder = Recorder()
    proxy.fail_always(503, "SlowDown", kinds={"upload_part"}, min_part_number=4)
    with pytest.raises(TransientUploadError):
        upload(client, bucket, body, KEY, on_multipart_started=recorder, **ONE_AT_A_TIME)
    proxy.clear_faults()
    proxy.reset_counts()

    result = upload(client, bucket, body, KEY, resume=recorder.last, **ONE_AT_A_TIME)

    assert result.parts_kept == 3 and parts_sent(proxy) == [4, 5, 6]
    stored = direct.get_object(Bucket=bucket, Key=KEY)["Body"].read()
    assert stored == b"made in memory " * 1000 + long_file.read_bytes()
    assert len(stored) == size + 15_000
