"""No upload replaces an object that is not its job's: against moto and Ceph RGW over HTTP, with
the fault proxy holding a request open while another writer takes the key."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.s3_backends import RGW, S3Backend
from tests.support.s3_fault_proxy import S3FaultProxy
from tests.support.uploads import MiB, upload
from upload_jobs.errors import ErrorKind, KeyConflict
from upload_jobs.storage.objects import find_existing_object
from upload_jobs.storage.ownership import KeyOwner
from upload_jobs.storage.spaces import list_open_multipart_uploads

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

KEY = "videos/2026-11-24/merged.mp4"
MULTIPART = {"multipart_threshold": 5 * MiB, "chunk_size": 5 * MiB}


def stored_bytes(direct: S3Client, bucket: str) -> bytes:
    return direct.get_object(Bucket=bucket, Key=KEY)["Body"].read()


def test_a_file_put_at_the_key_by_hand_is_never_overwritten(
    client: S3Client, direct: S3Client, bucket: str, proxy: S3FaultProxy, small_file: Path
) -> None:
    direct.put_object(Bucket=bucket, Key=KEY, Body=b"a poster frame someone put here")
    proxy.reset_counts()

    with pytest.raises(KeyConflict) as refused:
        upload(client, bucket, small_file, KEY, owner=KeyOwner(2))

    assert refused.value.error_kind is ErrorKind.KEY_CONFLICT
    message = str(refused.value)
    assert (
        f"s3://{bucket}/{KEY} already holds a file upload-jobs did not upload (31 bytes" in message
    )
    assert "it was not overwritten" in message and "upload-jobs set-key 2 KEY" in message
    assert stored_bytes(direct, bucket) == b"a poster frame someone put here"
    assert proxy.count("put_object") == 0


def test_another_jobs_video_is_never_overwritten(
    client: S3Client, direct: S3Client, bucket: str, small_file: Path, tmp_path: Path
) -> None:
    theirs = tmp_path / "day 1.mp4"
    theirs.write_bytes(b"job 1's video" * 1000)
    upload(client, bucket, theirs, KEY, owner=KeyOwner(1))

    with pytest.raises(KeyConflict, match=r"already holds upload job 1's video \(13000 bytes"):
        upload(client, bucket, small_file, KEY, owner=KeyOwner(2))
    assert stored_bytes(direct, bucket) == theirs.read_bytes()


def test_the_jobs_own_object_is_replaced_and_says_so(
    client: S3Client, direct: S3Client, bucket: str, small_file: Path, tmp_path: Path
) -> None:
    earlier = tmp_path / "earlier take.mp4"
    earlier.write_bytes(b"an earlier take" * 100)
    first = upload(client, bucket, earlier, KEY, owner=KeyOwner(7))
    assert not first.replaced

    again = upload(client, bucket, small_file, KEY, owner=KeyOwner(7))

    assert again.replaced and not again.skipped_existing
    assert stored_bytes(direct, bucket) == small_file.read_bytes()
    head = find_existing_object(direct, bucket, KEY)
    assert head is not None and head.owner == "7" and head.sha256 == again.sha256


def test_an_object_from_before_owners_were_named_is_the_job_s_by_its_sha256(
    client: S3Client, direct: S3Client, bucket: str, small_file: Path
) -> None:
    legacy = b"uploaded by the last release"
    sha256 = "a" * 64
    direct.put_object(Bucket=bucket, Key=KEY, Body=legacy, Metadata={"sha256": sha256})

    with pytest.raises(KeyConflict, match="names no job and is not this job's"):
        upload(client, bucket, small_file, KEY, owner=KeyOwner(3))
    result = upload(client, bucket, small_file, KEY, owner=KeyOwner(3, frozenset({sha256})))
    assert result.replaced and stored_bytes(direct, bucket) == small_file.read_bytes()


def test_a_key_taken_while_the_parts_are_sent_is_refused_before_completion(
    client: S3Client, direct: S3Client, bucket: str, proxy: S3FaultProxy, big_file: Path
) -> None:
    # The window is one round trip, not the upload: the key is checked again right before the
    # completing request, on every endpoint, whether or not it honours the condition there.
    proxy.slow_next(1, 1.0, kinds={"upload_part"})
    writer = _write_while_held(direct, bucket, proxy)

    with pytest.raises(KeyConflict, match="already holds a file upload-jobs did not upload"):
        upload(client, bucket, big_file, KEY, **MULTIPART)
    writer.join()

    assert stored_bytes(direct, bucket) == b"written in between"
    assert proxy.count("complete_multipart") == 0
    assert list_open_multipart_uploads(direct, bucket) == [], "the refused upload's parts go"


def _write_while_held(
    direct: S3Client, bucket: str, proxy: S3FaultProxy, after_seconds: float = 0.2
) -> threading.Thread:
    """Another writer takes the key while the proxy holds our request (`after_seconds` into the
    hold)."""

    def write() -> None:
        deadline = time.monotonic() + 60
        while not proxy.delayed and time.monotonic() < deadline:
            time.sleep(0.02)
        threading.Event().wait(after_seconds)
        direct.put_object(Bucket=bucket, Key=KEY, Body=b"written in between")

    writer = threading.Thread(target=write)
    writer.start()
    return writer


@pytest.mark.parametrize("multipart", [False, True], ids=["put", "multipart"])
def test_a_key_taken_between_the_check_and_the_write_is_refused_by_the_endpoint(
    client: S3Client,
    direct: S3Client,
    bucket: str,
    proxy: S3FaultProxy,
    small_file: Path,
    big_file: Path,
    multipart: bool,
    local_s3: S3Backend,
) -> None:
    # The last check saw an empty key; the write (or the multipart completion) is held for a
    # second, in which another writer puts its file there. If-None-Match: * makes the endpoint
    # refuse ours.
    proxy.slow_next(1, 1.0, kinds={"complete_multipart" if multipart else "put_object"})
    writer = _write_while_held(direct, bucket, proxy)
    options = MULTIPART if multipart else {}
    path = big_file if multipart else small_file

    if multipart and local_s3.name == RGW:
        # What remains where the endpoint ignores the condition on the completing request (the
        # README's compatibility table): the round trip between the last check and the
        # completion. Ours lands over the file written in it, and is verified as ours.
        result = upload(client, bucket, path, KEY, **options)
        writer.join()
        assert stored_bytes(direct, bucket) == path.read_bytes()
        assert result.etag and list_open_multipart_uploads(direct, bucket) == []
        return
    with pytest.raises(KeyConflict, match="already holds a file upload-jobs did not upload"):
        upload(client, bucket, path, KEY, **options)
    writer.join()

    assert stored_bytes(direct, bucket) == b"written in between"
    assert list_open_multipart_uploads(direct, bucket) == [], "the refused upload's parts go"


def test_an_endpoint_that_refuses_conditions_gets_the_write_without_them(
    client: S3Client,
    direct: S3Client,
    bucket: str,
    proxy: S3FaultProxy,
    small_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As an S3-compatible store that does not know conditional writes might answer.
    proxy.fail_next(1, 501, "NotImplemented", kinds={"put_object"})

    result = upload(client, bucket, small_file, KEY, owner=KeyOwner(4))

    assert stored_bytes(direct, bucket) == small_file.read_bytes() and not result.replaced
    assert "refused a conditional write (NotImplemented)" in caplog.text
    conditions = [h.get("if-none-match") for h in proxy.headers_of("put_object")]
    assert conditions == ["*", None], "asked once, then written without the condition"
