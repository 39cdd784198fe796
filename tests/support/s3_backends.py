"""The S3 servers the tests run against, behind one face: moto's imitation and a real Ceph RGW
(the engine DigitalOcean Spaces runs), each over HTTP on 127.0.0.1, each counting the requests
it served. Tests that talk to S3 run once per backend, as tests of the job table run once per
database.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from tests.support.rgw import RgwCluster, rgw_missing
from tests.support.s3_fault_proxy import S3FaultProxy
from upload_jobs.storage.local_s3 import LocalS3Server, S3Request

MOTO, RGW = "moto", "rgw"
# UPLOAD_JOBS_TEST_S3=moto (or rgw) runs one backend only, for a quick look.
S3_BACKENDS = tuple(
    name for name in (MOTO, RGW) if os.environ.get("UPLOAD_JOBS_TEST_S3", name) == name
)


class S3Backend(Protocol):
    """An S3 server the tests talk to over HTTP, counting what it served."""

    name: str

    @property
    def endpoint_url(self) -> str:
        """Where boto3 reaches it."""
        ...

    @property
    def requests(self) -> list[S3Request]:
        """Every request served so far, oldest first."""
        ...

    def counts(self, key: str | None = None) -> Counter[tuple[str, str]]:
        """Requests served per (method, kind), optionally only those for one object key."""
        ...

    def count(self, kind: str, key: str | None = None) -> int:
        """How many requests of one kind were served, optionally for one object key."""
        ...

    def reset_counts(self) -> None:
        """Forgets the requests counted so far (the stored objects stay)."""
        ...

    def allow(self, access_key: str, secret_key: str) -> None:
        """Makes the pair a valid key of the server (moto takes any)."""
        ...

    def temporary_credentials(self, tag: str) -> tuple[str, str, str]:
        """A key id, secret and session token the server takes, distinctive (`tag` in them
        where the server lets the tests choose)."""
        ...


class MotoBackend(LocalS3Server):
    """moto's S3 server: every key works, every bucket is shared."""

    name = MOTO

    def allow(self, access_key: str, secret_key: str) -> None:
        """moto takes any key."""

    def temporary_credentials(self, tag: str) -> tuple[str, str, str]:
        """Made up: moto takes any key and token."""
        return (
            f"AKIALEAK{tag.upper()}",
            f"leakSecret/{tag}+Kq9Zw3VxTn",
            f"FwoGZXIvYXdzELeakToken{tag}//Qm8Rw+Xy=",
        )


class RgwBackend:
    """A real Ceph RGW, behind a pass-through proxy that counts what it serves; every key a test
    allows belongs to one RGW user, so every key sees every bucket, as on moto."""

    name = RGW

    def __init__(self, cluster: RgwCluster, counter: S3FaultProxy) -> None:
        self.cluster = cluster
        self._counter = counter

    @property
    def endpoint_url(self) -> str:
        """The counting proxy's address."""
        return self._counter.endpoint_url

    @property
    def requests(self) -> list[S3Request]:
        """Every request served so far, oldest first."""
        return self._counter.requests

    def counts(self, key: str | None = None) -> Counter[tuple[str, str]]:
        """Requests served per (method, kind), optionally only those for one object key."""
        return Counter((r.method, r.kind) for r in self.requests if key is None or r.key == key)

    def count(self, kind: str, key: str | None = None) -> int:
        """How many requests of one kind were served, optionally for one object key."""
        return sum(1 for r in self.requests if r.kind == kind and (key is None or r.key == key))

    def reset_counts(self) -> None:
        """Forgets the requests counted so far."""
        self._counter.reset_counts()

    def allow(self, access_key: str, secret_key: str) -> None:
        """Adds the key to the tests' RGW user."""
        self.cluster.ensure_key(access_key, secret_key)

    def temporary_credentials(self, tag: str) -> tuple[str, str, str]:
        """A session RGW's STS issues to the tests' user: random key id, secret and token."""
        return self.cluster.session_credentials()


@contextmanager
def running_backend(name: str) -> Iterator[S3Backend]:
    """Starts the named backend; `RgwUnavailable` when RGW cannot run here."""
    if name == MOTO:
        with MotoBackend() as moto:
            yield moto
        return
    with RgwCluster() as cluster, S3FaultProxy(cluster.endpoint_url) as counter:
        yield RgwBackend(cluster, counter)


def backend_missing(name: str) -> str | None:
    """Why the named backend cannot run on this machine, or None."""
    return rgw_missing() if name == RGW else None
