"""Every PUT and part goes as UNSIGNED-PAYLOAD with its Content-MD5 (the endpoint verifies the
bytes; no second read to SHA-256-sign them), on both backends; UPLOAD_JOBS_S3_SIGN_PAYLOAD=true
signs them for an endpoint that wants it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support.s3_fault_proxy import S3FaultProxy
from tests.support.uploads import MiB, settings_for, upload
from upload_jobs.storage.spaces import make_s3_client

PART = 5 * MiB


@pytest.mark.parametrize("sign", [False, True], ids=["unsigned", "signed"])
def test_what_each_request_sends_as_its_payload_hash(
    proxy: S3FaultProxy, bucket: str, big_file: Path, small_file: Path, sign: bool
) -> None:
    client = make_s3_client(settings_for(proxy.endpoint_url, bucket, s3_sign_payload=sign))
    upload(client, bucket, small_file, "videos/one-put.mp4")
    upload(client, bucket, big_file, "videos/parts.mp4", multipart_threshold=PART,
           chunk_size=PART)  # fmt: skip

    sent = proxy.headers_of("put_object") + proxy.headers_of("upload_part")
    assert len(sent) == 1 + 3 and all("content-md5" in headers for headers in sent)
    hashes = [headers["x-amz-content-sha256"] for headers in sent]
    if sign:
        assert hashes[0] == hashlib.sha256(small_file.read_bytes()).hexdigest()
        assert "UNSIGNED-PAYLOAD" not in hashes
    else:
        assert hashes == ["UNSIGNED-PAYLOAD"] * 4
