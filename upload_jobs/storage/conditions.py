"""Writes that happen only if the key is still as it was checked: empty (`If-None-Match: *`) or
holding the job's own object (`If-Match: ETAG`).

Endpoints differ, and what they do is learnt from what they answer, never from their name:
- AWS S3 and moto compare `If-Match` with the quoted ETag (the form HEAD returns); Ceph RGW 16.2
  (DigitalOcean Spaces' engine) compares it without removing the quotes, so the quoted form is
  always refused. A 412 over an object a HEAD shows unchanged is the endpoint's form, not a
  conflict: the write is sent again in the other form, which this process then keeps using.
- An endpoint that refuses `If-Match` in both forms over an unchanged object, or refuses the
  headers as unknown, gets the write without them, once warned: the check before the write is
  then all there is.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore import exceptions as bce

from upload_jobs.errors import KeyConflict
from upload_jobs.storage.failures import error_code, http_status
from upload_jobs.storage.objects import ExistingObject, find_existing_object

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

# 412 PreconditionFailed: the key is no longer as seen; 409: another conditional write to it is
# under way (AWS S3).
_REFUSED = {"PreconditionFailed", "ConditionalRequestConflict"}
# What an endpoint that does not know conditional writes may answer them with.
_UNKNOWN = {"NotImplemented", "InvalidArgument", "InvalidRequest"}

Send = Callable[[dict[str, Any]], object]


class ConditionRefused(KeyConflict):
    """The endpoint refused the write: the key changed since it was checked (the caller looks at
    what holds it now)."""


@dataclass
class _Learnt:
    """What this process learnt about endpoints' conditional writes, by endpoint URL."""

    unquoted_if_match: set[str]
    no_if_match: set[str]
    no_conditions: set[str]
    lock: threading.Lock


_learnt = _Learnt(set(), set(), set(), threading.Lock())


def forget_endpoint_behaviour() -> None:
    """Forget what was learnt about endpoints (tests start endpoints on reused ports)."""
    with _learnt.lock:
        _learnt.unquoted_if_match.clear()
        _learnt.no_if_match.clear()
        _learnt.no_conditions.clear()


@dataclass(frozen=True)
class KeyExpectation:
    """What the key held when it was checked: nothing (`etag` None), or the job's own object
    with this ETag (without quotes)."""

    etag: str | None = None

    def holds(self, now: ExistingObject | None) -> bool:
        """Whether the key still holds what it held (`now`: a fresh HEAD of it)."""
        if self.etag is None:
            return now is None
        return now is not None and now.etag == self.etag

    def headers(self, *, quoted: bool = True) -> dict[str, Any]:
        """The condition as boto3 parameters."""
        if self.etag is None:
            return {"IfNoneMatch": "*"}
        return {"IfMatch": f'"{self.etag}"' if quoted else self.etag}


@dataclass(frozen=True)
class ConditionalWrite:
    """A write to `bucket`/`key` that must find the key as `expected`."""

    client: S3Client
    bucket: str
    key: str
    expected: KeyExpectation

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def endpoint(self) -> str:
        """The endpoint URL, which what was learnt is kept by."""
        return str(self.client.meta.endpoint_url)

    def still_as_expected(self) -> bool:
        """A fresh HEAD: whether the key still holds what it held when checked."""
        return self.expected.holds(find_existing_object(self.client, self.bucket, self.key))

    def send(self, send: Send) -> None:
        """`send(condition)`; `ConditionRefused` when the key changed. Sent again in the other
        ETag form, or without the condition, when the endpoint is the one refusing (see above)."""
        endpoint, if_match = self.endpoint, self.expected.etag is not None
        with _learnt.lock:
            unconditional = endpoint in _learnt.no_conditions or (
                if_match and endpoint in _learnt.no_if_match
            )
            quoted = endpoint not in _learnt.unquoted_if_match
        if unconditional:
            send({})
            return
        try:
            send(self.expected.headers(quoted=quoted))
        except bce.ClientError as exc:
            if _refused(exc):
                if if_match and self.still_as_expected():
                    self._other_etag_form(send, quoted)
                    return
                raise ConditionRefused(f"{self} changed since it was checked") from exc
            if error_code(exc) not in _UNKNOWN and http_status(exc) != 501:
                raise
            logger.warning(
                "%s refused a conditional write (%s): writing without the condition, as every "
                "later upload of this process to it will (the key was checked just before)",
                endpoint, error_code(exc) or http_status(exc),
            )  # fmt: skip
            with _learnt.lock:
                _learnt.no_conditions.add(endpoint)
            send({})

    def _other_etag_form(self, send: Send, quoted: bool) -> None:
        """The endpoint refused `If-Match` over an unchanged object: the ETag's other form, and
        no condition if it refuses that too while the object is still unchanged."""
        endpoint, form = self.endpoint, "without quotes" if quoted else "in quotes"
        try:
            send(self.expected.headers(quoted=not quoted))
        except bce.ClientError as exc:
            if not _refused(exc):
                raise
            if not self.still_as_expected():
                raise ConditionRefused(f"{self} changed since it was checked") from exc
            logger.warning(
                "%s refuses If-Match in both ETag forms over an unchanged object: replacing "
                "objects there without it, as every later upload of this process will (the key "
                "is checked just before)", endpoint,
            )  # fmt: skip
            with _learnt.lock:
                _learnt.no_if_match.add(endpoint)
            send({})
            return
        with _learnt.lock:
            if quoted:
                _learnt.unquoted_if_match.add(endpoint)
            else:
                _learnt.unquoted_if_match.discard(endpoint)
        logger.warning(
            "%s refused If-Match with the ETag %s over an unchanged object and took it %s: this "
            "process sends it that way to this endpoint from now on (Ceph RGW 16.2 compares the "
            "quotes too)", endpoint, "in quotes" if quoted else "without quotes", form,
        )  # fmt: skip


def _refused(exc: bce.ClientError) -> bool:
    return error_code(exc) in _REFUSED or http_status(exc) == 412
