"""What the storage tests share: the session's S3 server (moto, and RGW where installed), a fault
proxy in front of it, a fresh bucket per test, fake credentials from the environment only, files
to upload."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.s3_backends import S3Backend
from tests.support.s3_fault_proxy import S3FaultProxy
from tests.support.uploads import ACCESS_KEY, SECRET, MiB, settings_for
from upload_jobs.storage.conditions import forget_endpoint_behaviour
from upload_jobs.storage.spaces import ensure_bucket, make_s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@pytest.fixture
def local_s3(s3_server: S3Backend) -> S3Backend:
    """The session's S3 server, with the storage tests' key allowed."""
    s3_server.allow(ACCESS_KEY, SECRET)
    return s3_server


@pytest.fixture(autouse=True)
def fresh_endpoint_behaviour() -> Iterator[None]:
    """Each test learns how its endpoint takes conditional writes (proxies reuse ports)."""
    forget_endpoint_behaviour()
    yield
    forget_endpoint_behaviour()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials from the environment only; the host's AWS config stays out of it."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "nyc3")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def proxy(local_s3: S3Backend) -> Iterator[S3FaultProxy]:
    """A proxy in front of moto that counts requests and injects faults."""
    local_s3.reset_counts()
    with S3FaultProxy(local_s3.endpoint_url) as fault_proxy:
        yield fault_proxy


@pytest.fixture
def direct(local_s3: S3Backend, aws_env: None) -> S3Client:
    """A client straight to moto, for setup and inspection that the proxy must not count."""
    return make_s3_client(settings_for(local_s3.endpoint_url, "unused"))


@pytest.fixture
def bucket(direct: S3Client) -> str:
    """A bucket of the test's own (moto's buckets are process-wide)."""
    name = f"videos-{uuid.uuid4().hex[:12]}"
    ensure_bucket(direct, name)
    return name


@pytest.fixture
def client(proxy: S3FaultProxy, bucket: str) -> S3Client:
    """The client a run would use, through the proxy."""
    return make_s3_client(settings_for(proxy.endpoint_url, bucket, s3_max_attempts=3))


@pytest.fixture
def small_file(tmp_path: Path) -> Path:
    """200 kB of random bytes: one PUT."""
    path = tmp_path / "small clip.mp4"
    path.write_bytes(os.urandom(200_000))
    return path


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 parts of 5 MiB, the last one shorter."""
    path = tmp_path_factory.mktemp("big") / "big.mp4"
    path.write_bytes(os.urandom(12 * MiB + 12345))
    return path
