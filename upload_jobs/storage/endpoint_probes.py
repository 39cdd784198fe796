"""What an S3 endpoint does with each request the product's guarantees rest on, found by trying
it under a scratch prefix that is removed afterwards (also when the probing is stopped).

Each probe says whether the feature works, is refused or is silently ignored, which guarantee of
the product it touches, and whether that guarantee is weaker there. Only keys under the scratch
prefix are ever written.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore import UNSIGNED
from botocore import exceptions as bce
from botocore.config import Config

from upload_jobs.storage.failures import describe_refusal, error_code, http_status

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedMultipartUploadTypeDef

logger = logging.getLogger(__name__)

SCRATCH_PREFIX = "upload-jobs-check-endpoint/"
PAYLOAD = b"upload-jobs check-endpoint probe\n" * 32


class Outcome(StrEnum):
    """What the endpoint did with a feature."""

    WORKS = "works"
    REFUSED = "refused"
    IGNORED = "ignored"


@dataclass(frozen=True)
class ProbeResult:
    """One feature: what the endpoint did, what was seen, and what it means for uploads."""

    check: str
    outcome: Outcome
    seen: str
    guarantee: str
    # Whether the product's guarantee is weaker on this endpoint because of it.
    weaker: bool
    meaning: str


@dataclass(frozen=True)
class EndpointReport:
    """Every probe's result, for one endpoint and bucket."""

    endpoint: str
    bucket: str
    prefix: str
    results: tuple[ProbeResult, ...]

    @property
    def weaker(self) -> list[ProbeResult]:
        """The results that make a guarantee of the product weaker here."""
        return [result for result in self.results if result.weaker]

    @property
    def safe(self) -> bool:
        """Whether every guarantee of the product holds in full here."""
        return not self.weaker


# A client to the same endpoint with the same key, its botocore configuration changed.
ClientVariant = Callable[[Config], "S3Client"]


@dataclass(frozen=True)
class _Scratch:
    """The client, bucket and scratch prefix the probes write under, the ACL uploads send."""

    client: S3Client
    bucket: str
    prefix: str
    acl: str
    variant: ClientVariant

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def put(self, name: str, body: bytes = PAYLOAD, **extra: Any) -> str:
        """PUTs `body` at the scratch key `name`; its ETag without quotes."""
        answer = self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=body, **extra)
        return str(answer.get("ETag", "")).strip('"')

    def refusal(self, call: Callable[[], object]) -> bce.ClientError | None:
        """Runs `call`: None when it was accepted, else the endpoint's refusal."""
        try:
            call()
        except bce.ClientError as exc:
            return exc
        return None


def probe_endpoint(
    client: S3Client,
    bucket: str,
    variant: ClientVariant,
    *,
    acl: str = "public-read",
    on_probe: Callable[[str], None] | None = None,
) -> EndpointReport:
    """Runs every probe under a fresh scratch prefix of `bucket`, then removes what it wrote;
    `variant` makes the clients some probes need (anonymous, boto3's default checksums)."""
    prefix = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}/"
    scratch = _Scratch(client, bucket, prefix, acl, variant)
    results = []
    with removed_afterwards(client, bucket, prefix):
        for check, probe in _PROBES:
            if on_probe is not None:
                on_probe(check)
            try:
                results.append(probe(scratch))
            except bce.ClientError as exc:  # a request the probe needs was itself refused
                results.append(ProbeResult(check, Outcome.REFUSED, describe_refusal(exc),
                                           "uploads need this request", True,
                                           "the endpoint refused it"))  # fmt: skip
    return EndpointReport(
        str(client.meta.endpoint_url or "AWS S3"), bucket, scratch.prefix, tuple(results)
    )


@contextmanager
def removed_afterwards(client: S3Client, bucket: str, prefix: str) -> Iterator[None]:
    """Deletes every object and aborts every multipart upload under `prefix` when the block
    ends, however it ends."""
    try:
        yield
    finally:
        uploads = client.get_paginator("list_multipart_uploads")
        for listed in uploads.paginate(Bucket=bucket, Prefix=prefix):
            for upload in listed.get("Uploads", []):
                client.abort_multipart_upload(
                    Bucket=bucket, Key=upload.get("Key", ""), UploadId=upload.get("UploadId", "")
                )
        objects = client.get_paginator("list_objects_v2")
        for page in objects.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item.get("Key", ""))


def _seen(exc: bce.ClientError | None, accepted: str = "accepted") -> str:
    return accepted if exc is None else describe_refusal(exc)


def _code(exc: bce.ClientError | None) -> str:
    """`404 NoSuchKey`: the status and code of a refusal, or `accepted`."""
    if exc is None:
        return "accepted"
    status, code = str(http_status(exc) or ""), error_code(exc)
    return " ".join(part for part in (status, code if code != status else "") if part)


def _refused_as_changed(exc: bce.ClientError | None) -> bool:
    return exc is not None and (http_status(exc) == 412 or error_code(exc) == "PreconditionFailed")


def _if_none_match_on_put(scratch: _Scratch) -> ProbeResult:
    scratch.put("taken")
    refusal = scratch.refusal(partial(scratch.put, "taken", IfNoneMatch="*"))
    guarantee = "an empty key is never written over"
    if _refused_as_changed(refusal):
        return ProbeResult("PUT If-None-Match: *", Outcome.WORKS, _seen(refusal), guarantee,
                           False, "atomic in one PUT")  # fmt: skip
    outcome = Outcome.IGNORED if refusal is None else Outcome.REFUSED
    return ProbeResult("PUT If-None-Match: *", outcome, _seen(refusal, "overwrote the key"),
                       guarantee, True,
                       "only the check before the PUT guards it")  # fmt: skip


def _if_match_form(quoted: bool) -> Callable[[_Scratch], ProbeResult]:
    form = "quoted" if quoted else "unquoted"

    def probe(scratch: _Scratch) -> ProbeResult:
        etag = scratch.put(f"own-{form}")
        condition = f'"{etag}"' if quoted else etag
        refusal = scratch.refusal(partial(scratch.put, f"own-{form}", IfMatch=condition))
        outcome = Outcome.WORKS if refusal is None else Outcome.REFUSED
        return ProbeResult(
            f"PUT If-Match, {form}", outcome, _seen(refusal),
            "a job replaces its own object", False,
            "used" if refusal is None else "handled: sent in the other form",
        )  # fmt: skip

    return probe


def _if_match_on_a_changed_object(scratch: _Scratch) -> ProbeResult:
    scratch.put("changed")
    stale = hashlib.md5(b"an older version", usedforsecurity=False).hexdigest()
    refusals = [scratch.refusal(partial(scratch.put, "changed", IfMatch=tag))
                for tag in (f'"{stale}"', stale)]  # fmt: skip
    guarantee = "a changed object is never replaced"
    if all(_refused_as_changed(refusal) for refusal in refusals):
        return ProbeResult("PUT If-Match, changed", Outcome.WORKS,
                           _seen(refusals[0]), guarantee, False,
                           "atomic in one PUT")  # fmt: skip
    return ProbeResult("PUT If-Match, changed", Outcome.IGNORED,
                       "a stale ETag was accepted", guarantee, True,
                       "only the check before the PUT guards it")  # fmt: skip


def _completion_under(scratch: _Scratch, name: str, condition: dict[str, Any]) -> bool:
    """Whether a multipart completion under `condition` is refused once someone else has put
    an object at the key."""
    key = scratch.key(name)
    upload_id = scratch.client.create_multipart_upload(Bucket=scratch.bucket, Key=key)["UploadId"]
    part = scratch.client.upload_part(
        Bucket=scratch.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=PAYLOAD
    )
    scratch.put(name, b"put there by someone else")
    parts: CompletedMultipartUploadTypeDef = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    return _refused_as_changed(scratch.refusal(partial(
        scratch.client.complete_multipart_upload, Bucket=scratch.bucket, Key=key,
        UploadId=upload_id, MultipartUpload=parts, **condition,
    )))  # fmt: skip


def _conditional_completion(scratch: _Scratch) -> ProbeResult:
    conditions = {
        "If-None-Match": {"IfNoneMatch": "*"},
        "If-Match": {"IfMatch": '"0123456789abcdef0123456789abcdef"'},
    }
    ignored = [
        header
        for header, condition in conditions.items()
        if not _completion_under(scratch, f"complete-{header.lower()}", condition)
    ]
    guarantee = "multipart replaces nothing unchecked"
    if not ignored:
        return ProbeResult("conditional completion", Outcome.WORKS,
                           "both refused with 412", guarantee, False,
                           "atomic at completion")  # fmt: skip
    return ProbeResult(
        "conditional completion", Outcome.IGNORED,
        f"{' and '.join(ignored)} ignored: the object was replaced", guarantee, True,
        "checked one round trip before completing; a write in that round trip is lost",
    )  # fmt: skip


def _gone_upload(scratch: _Scratch) -> tuple[str, str]:
    upload_id = scratch.client.create_multipart_upload(
        Bucket=scratch.bucket, Key=scratch.key("gone")
    )["UploadId"]
    scratch.client.abort_multipart_upload(
        Bucket=scratch.bucket, Key=scratch.key("gone"), UploadId=upload_id
    )
    return scratch.key("gone"), upload_id


def _list_parts_of_a_gone_upload(scratch: _Scratch) -> ProbeResult:
    key, upload_id = _gone_upload(scratch)
    refusal = scratch.refusal(
        partial(scratch.client.list_parts, Bucket=scratch.bucket, Key=key, UploadId=upload_id)
    )
    outcome = Outcome.WORKS if refusal is not None else Outcome.IGNORED
    return ProbeResult("ListParts, gone upload", outcome, _seen(refusal, "listed"),
                       "a gone upload never fails every retry", False,
                       f"handled ({_code(refusal)}): a fresh upload starts")  # fmt: skip


def _completing_a_gone_upload(scratch: _Scratch) -> ProbeResult:
    key, upload_id = _gone_upload(scratch)
    refusal = scratch.refusal(partial(
        scratch.client.complete_multipart_upload, Bucket=scratch.bucket, Key=key,
        UploadId=upload_id, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"00"'}]},
    ))  # fmt: skip
    outcome = Outcome.WORKS if refusal is not None else Outcome.IGNORED
    return ProbeResult("complete, gone upload", outcome, _seen(refusal, "completed"),
                       "a gone upload never fails every retry", False,
                       f"handled ({_code(refusal)}): a fresh upload starts")  # fmt: skip


def _content_md5(scratch: _Scratch) -> ProbeResult:
    wrong = base64.b64encode(hashlib.md5(b"other bytes", usedforsecurity=False).digest()).decode()
    refusal = scratch.refusal(partial(scratch.put, "md5", ContentMD5=wrong))
    guarantee = "what is stored is what was sent"
    if refusal is not None:
        return ProbeResult("Content-MD5", Outcome.WORKS, _seen(refusal), guarantee,
                           False, "every PUT and part is checked")  # fmt: skip
    return ProbeResult("Content-MD5", Outcome.IGNORED, "a wrong MD5 was accepted",
                       guarantee, True,
                       "only the signed payload hash checks it")  # fmt: skip


def _unsigned_payload(scratch: _Scratch) -> ProbeResult:
    client = scratch.variant(Config(s3={"payload_signing_enabled": False}))
    sent: list[str] = []

    def seen(request: Any, **_: Any) -> None:
        sent.append(request.headers.get("X-Amz-Content-SHA256", b"").decode())

    client.meta.events.register("before-send.s3.PutObject", seen)
    key = scratch.key("unsigned")
    put = partial(client.put_object, Bucket=scratch.bucket, Key=key, Body=PAYLOAD)
    refusal = scratch.refusal(put)
    guarantee = "each byte is read once to be sent"
    if refusal is None and sent == ["UNSIGNED-PAYLOAD"]:
        return ProbeResult("unsigned payload", Outcome.WORKS, "accepted", guarantee, False,
                           "used: Content-MD5 checks the bytes")  # fmt: skip
    return ProbeResult("unsigned payload", Outcome.REFUSED, _seen(refusal, f"sent {sent}"),
                       guarantee, True, "set UPLOAD_JOBS_S3_SIGN_PAYLOAD=true")  # fmt: skip


def _sha256_checksum(scratch: _Scratch) -> ProbeResult:
    wrong = base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode()
    refusal = scratch.refusal(
        partial(scratch.put, "sha256", ChecksumAlgorithm="SHA256", ChecksumSHA256=wrong)
    )
    outcome = Outcome.WORKS if refusal is not None else Outcome.IGNORED
    return ProbeResult("SHA-256 checksum", outcome,
                       _seen(refusal, "a wrong SHA-256 was accepted"), "none: not used", False,
                       "Content-MD5 is used instead")  # fmt: skip


def _aws_chunked(scratch: _Scratch) -> ProbeResult:
    # boto3's default since 1.36: the payload as aws-chunked with a CRC32 trailer (botocore
    # does this over HTTPS only; forced here so plain-HTTP endpoints are probed alike).
    client = scratch.variant(Config(request_checksum_calculation="when_supported"))

    def trailer(params: Any, context: dict[str, Any], **_: Any) -> None:
        algorithm = context.get("checksum", {}).get("request_algorithm")
        if isinstance(algorithm, dict):
            algorithm["in"] = "trailer"

    client.meta.events.register("before-call.s3.PutObject", trailer)
    refusal = scratch.refusal(
        partial(client.put_object, Bucket=scratch.bucket, Key=scratch.key("chunked"), Body=PAYLOAD)
    )
    outcome = Outcome.WORKS if refusal is None else Outcome.REFUSED
    return ProbeResult("aws-chunked", outcome, _seen(refusal), "none: not used",
                       False, "plain bodies are sent")  # fmt: skip


def _public_read(scratch: _Scratch) -> ProbeResult:
    guarantee, acl = "the public link serves the video", scratch.acl
    if not acl:
        return ProbeResult("public-read ACL", Outcome.WORKS, "UPLOAD_JOBS_ACL is empty: not sent",
                           guarantee, False, "the bucket's policy decides")  # fmt: skip
    refusal = scratch.refusal(partial(scratch.put, "public", ACL=acl))
    if refusal is None:
        anonymous = scratch.variant(Config(signature_version=UNSIGNED))
        refusal = scratch.refusal(
            partial(anonymous.get_object, Bucket=scratch.bucket, Key=scratch.key("public"))
        )
    if refusal is None:
        return ProbeResult(f"{acl} ACL", Outcome.WORKS, "read without credentials", guarantee,
                           False, "readable without credentials")  # fmt: skip
    return ProbeResult(f"{acl} ACL", Outcome.REFUSED, _seen(refusal), guarantee, True,
                       "links answer 403 unless the bucket is public")  # fmt: skip


def _metadata(scratch: _Scratch) -> ProbeResult:
    sent = {"sha256": hashlib.sha256(PAYLOAD).hexdigest(), "upload-job-id": "0"}
    scratch.put("metadata", Metadata=sent)
    got = scratch.client.head_object(Bucket=scratch.bucket, Key=scratch.key("metadata"))
    guarantee = "owner and sha256 recognise objects"
    if got.get("Metadata") == sent:
        return ProbeResult("metadata round trip", Outcome.WORKS, "sha256 and owner came back",
                           guarantee, False, "kept as sent")  # fmt: skip
    came_back = f"came back as {got.get('Metadata')}"
    return ProbeResult("metadata round trip", Outcome.IGNORED, came_back, guarantee, True,
                       "every upload fails its verification")  # fmt: skip


def _ranged_get(scratch: _Scratch) -> ProbeResult:
    scratch.put("range")
    got = scratch.client.get_object(Bucket=scratch.bucket, Key=scratch.key("range"),
                                    Range="bytes=10-19")  # fmt: skip
    body = got["Body"].read()
    guarantee = "players start and seek"
    if got["ResponseMetadata"]["HTTPStatusCode"] == 206 and body == PAYLOAD[10:20]:
        return ProbeResult("ranged GET", Outcome.WORKS, "206 with the 10 bytes asked for",
                           guarantee, False, "206 with the bytes asked")  # fmt: skip
    return ProbeResult("ranged GET", Outcome.IGNORED, f"{len(body)} bytes for 10 asked",
                       guarantee, True, "players download from the start")  # fmt: skip


_PROBES: tuple[tuple[str, Callable[[_Scratch], ProbeResult]], ...] = (
    ("conditional PUT on an empty key", _if_none_match_on_put),
    ("If-Match with the ETag quoted", _if_match_form(quoted=True)),
    ("If-Match with the ETag unquoted", _if_match_form(quoted=False)),
    ("If-Match on a changed object", _if_match_on_a_changed_object),
    ("conditional completion", _conditional_completion),
    ("ListParts of a gone upload", _list_parts_of_a_gone_upload),
    ("completing a gone upload", _completing_a_gone_upload),
    ("Content-MD5", _content_md5),
    ("unsigned payload", _unsigned_payload),
    ("SHA-256 checksum", _sha256_checksum),
    ("aws-chunked", _aws_chunked),
    ("public-read ACL", _public_read),
    ("metadata round trip", _metadata),
    ("ranged GET", _ranged_get),
)
