"""One body going to one key: a single PUT, or a multipart upload streamed from the source;
written only if the key is as it was seen.

A multipart upload stopped by a failure a retry may fix, a signal or a cancellation is kept for
the job's next try, which sends only the parts missing (`storage.resume`); any other failure
aborts it, so no part is left behind unless it is kept on purpose.

The condition (`If-None-Match: *` for a key that was empty, `If-Match: ETAG` for the job's own
object) makes the check before the write atomic where the endpoint honours it: AWS S3 and moto
do (moto not for `If-Match` on a multipart completion). An endpoint that refuses the headers as
unknown gets the write without them, once warned: the check before the write is then all there is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, cast

from botocore import exceptions as bce

from upload_jobs.errors import KeyConflict, TransientUploadError, UploadJobError
from upload_jobs.storage.failures import NO_SUCH_UPLOAD, classify_upload_error
from upload_jobs.storage.resume import (
    BodyDigests,
    MultipartUpload,
    Span,
    part_size_for,
    parts_to_keep,
    stored_parts,
    usable_for,
)
from upload_jobs.storage.upload_body import UploadBody

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

logger = logging.getLogger(__name__)

# Each abort request is already retried by botocore; a few more tries make a part left
# behind (and billed) by a flaky endpoint rare enough to ignore.
ABORT_ATTEMPTS = 3


# 412 PreconditionFailed: the key is no longer as seen; 409: another conditional write to it
# is under way (AWS S3).
_REFUSED_CONDITION = {"PreconditionFailed", "ConditionalRequestConflict"}
# What an endpoint that does not know conditional writes may answer them with.
_UNKNOWN_CONDITION = {"NotImplemented", "InvalidArgument", "InvalidRequest"}
# Endpoints that refused the headers once: this process writes to them without asking again.
_endpoints_without_conditions: set[str] = set()


class ConditionRefused(KeyConflict):
    """The endpoint refused the write: the key changed since it was checked (the caller looks at
    what holds it now)."""


def error_code(exc: bce.ClientError) -> str:
    """The S3 error code of a failed request (`NoSuchKey`, `PreconditionFailed`...)."""
    return str(exc.response.get("Error", {}).get("Code") or "")


def _status(exc: bce.ClientError) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


@dataclass(frozen=True)
class SentParts:
    """How a multipart upload went: parts in all, parts an earlier try had stored, bytes sent."""

    total: int
    kept: int
    bytes_sent: int


@dataclass(frozen=True)
class Transfer:
    """One body going to one key, by a single PUT or by multipart."""

    client: S3Client
    bucket: str
    key: str
    body: UploadBody
    headers: dict[str, Any]
    on_progress: Callable[[int], None] | None
    condition: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def put(self) -> None:
        """One PUT of the whole body, under the condition."""

        def send(condition: dict[str, Any]) -> None:
            with self.body.open() as stream:
                self.client.put_object(
                    Bucket=self.bucket, Key=self.key, Body=cast("IO[bytes]", stream),
                    **self.headers, **condition,
                )  # fmt: skip

        self._conditionally(send)
        if self.on_progress is not None:
            self.on_progress(self.body.size)

    def _conditionally(self, send: Callable[[dict[str, Any]], object]) -> None:
        """`send(condition)`; `ConditionRefused` when the endpoint refuses it, and once without
        the condition when the endpoint does not know it."""
        endpoint = str(self.client.meta.endpoint_url)
        condition = {} if endpoint in _endpoints_without_conditions else self.condition
        try:
            send(condition)
        except bce.ClientError as exc:
            if not condition:
                raise
            if error_code(exc) in _REFUSED_CONDITION or _status(exc) == 412:
                raise ConditionRefused(f"{self} changed since it was checked") from exc
            if error_code(exc) not in _UNKNOWN_CONDITION and _status(exc) != 501:
                raise
            logger.warning(
                "%s refused a conditional write (%s): writing without the condition, as every "
                "later upload of this process to it will (the key was checked just before)",
                endpoint, error_code(exc) or _status(exc),
            )  # fmt: skip
            _endpoints_without_conditions.add(endpoint)
            send({})

    def multipart(
        self,
        chunk_size: int,
        concurrency: int,
        digests: BodyDigests,
        resume: MultipartUpload | None = None,
        on_started: Callable[[MultipartUpload], bool] | None = None,
    ) -> SentParts:
        """Fills and completes a multipart upload: `resume`'s, keeping the parts it holds of these
        very bytes, else a new one. `on_started` sees it before any part is sent, and says
        whether it was recorded for a later try: only then is it kept when a transient failure
        or an interruption stops it; otherwise, and for any other failure, it is aborted."""
        upload, kept = self._resumed(resume, digests)
        self._abort_left_behind(keep=upload.upload_id if upload else None)
        if upload is None:
            created = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, **self.headers
            )
            part_bytes = part_size_for(self.body.size, chunk_size)
            upload = MultipartUpload(
                created["UploadId"], part_bytes, self.body.size, digests.sha256
            )
        recorded = on_started is not None and on_started(upload)
        spans = upload.parts()
        missing = [span for span in spans if span.number not in kept]
        sent = sum(span.length for span in missing)
        try:
            parts = self._send_parts(upload, missing, concurrency, already=self.body.size - sent)
            parts += [{"PartNumber": number, "ETag": f'"{etag}"'} for number, etag in kept.items()]
            parts.sort(key=lambda part: part.get("PartNumber", 0))
            # The check that counts is at completion: the object appears only then.
            self._conditionally(
                lambda condition: self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=upload.upload_id,
                    MultipartUpload={"Parts": parts}, **condition,
                )
            )  # fmt: skip
        except BaseException as exc:
            # BaseException, not Exception: Ctrl-C must not leave billed parts behind unless
            # they are kept for the next try on purpose.
            if recorded and _worth_resuming(exc):
                logger.info("Multipart upload %s of %s kept for the job's next try, which sends "
                            "only the parts missing", upload.upload_id, self)  # fmt: skip
            else:
                self._abort_quietly(upload.upload_id)
            raise
        return SentParts(len(spans), len(kept), sent)

    def _resumed(
        self, resume: MultipartUpload | None, digests: BodyDigests
    ) -> tuple[MultipartUpload | None, dict[int, str]]:
        """`resume` and the parts of it worth keeping, when it can carry these bytes."""
        if resume is None:
            return None, {}
        if why_not := usable_for(resume, self.body.size, digests.sha256):
            logger.info("Not resuming multipart upload %s of %s: %s; starting a fresh one",
                        resume.upload_id, self, why_not)  # fmt: skip
            self._abort_quietly(resume.upload_id)
            return None, {}
        stored = stored_parts(self.client, self.bucket, self.key, resume.upload_id)
        if stored is None:
            logger.info("Multipart upload %s of %s is gone (completed or aborted): starting a "
                        "fresh one", resume.upload_id, self)  # fmt: skip
            return None, {}
        kept = parts_to_keep(self.body, resume, stored, digests)
        logger.info("Resuming multipart upload %s of %s: %d of %d parts already stored, "
                    "sending the other %d", resume.upload_id, self, len(kept),
                    len(resume.parts()), len(resume.parts()) - len(kept))  # fmt: skip
        return resume, kept

    def _send_parts(
        self, upload: MultipartUpload, spans: list[Span], concurrency: int, already: int
    ) -> list[CompletedPartTypeDef]:
        """Uploads the parts with at most `concurrency` in flight; returns them as they landed.
        `already`: bytes stored by an earlier try, counted in the progress."""

        def send(span: Span) -> CompletedPartTypeDef:
            # Streamed from the body: memory does not grow with the part size.
            with self.body.open(span.offset, span.length) as stream:
                response = self.client.upload_part(
                    Bucket=self.bucket, Key=self.key, UploadId=upload.upload_id,
                    PartNumber=span.number, Body=cast("IO[bytes]", stream),
                )  # fmt: skip
            logger.debug("Part %d of %s uploaded (%d bytes)", span.number, self, span.length)
            return {"PartNumber": span.number, "ETag": response["ETag"]}

        parts: list[CompletedPartTypeDef] = []
        uploaded = already
        if already and self.on_progress is not None:
            self.on_progress(uploaded)
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix="upload-part")
        pending = {pool.submit(send, span): span.length for span in spans}
        try:
            while pending:
                # Each part as it lands, for progress; a failed part raises at result().
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    uploaded += pending.pop(future)
                    parts.append(future.result())
                    if self.on_progress is not None:
                        self.on_progress(uploaded)
        except Exception:
            # Parts not started yet are dropped; those in flight may still land, and the next
            # try (a task retry in a few seconds) must see them stored, not send them again.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        except BaseException:
            # Stopped: the run goes on at once, not after the parts in flight (a stopped run
            # gives its job back now); the next try lists what landed.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return parts

    def _abort_left_behind(self, keep: str | None) -> None:
        """Abort the multipart uploads open on this very key but `keep`: runs of the same job
        left them (a key belongs to one job, and one run holds a job at a time)."""
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.key
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                upload_id = upload.get("UploadId")
                if upload.get("Key") == self.key and upload_id and upload_id != keep:
                    logger.info("Aborting multipart upload %s of %s, left by an earlier run",
                                upload_id, self)  # fmt: skip
                    self._abort_quietly(upload_id)

    def _abort_quietly(self, upload_id: str) -> None:
        """Best-effort abort, tried a few times (parts left behind are billed); its own failure
        is logged so it never hides the original error."""
        for attempt in range(1, ABORT_ATTEMPTS + 1):
            try:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=upload_id
                )
            except Exception as exc:
                if isinstance(exc, bce.ClientError) and error_code(exc) == NO_SUCH_UPLOAD:
                    return  # already gone is what we wanted
                error = classify_upload_error(exc, bucket=self.bucket)
                logger.warning("Could not abort multipart upload %s of %s (try %d of %d): %s",
                               upload_id, self, attempt, ABORT_ATTEMPTS, error)  # fmt: skip
                continue
            logger.info("Aborted multipart upload %s of %s", upload_id, self)
            return


def _worth_resuming(exc: BaseException) -> bool:
    """Whether the next try may finish the upload: it was interrupted (a signal, a cancellation,
    a lost lease), or failed in a way a retry may fix; not for a key conflict or changed bytes."""
    if not isinstance(exc, Exception):
        return True
    if isinstance(exc, UploadJobError):
        return isinstance(exc, TransientUploadError)
    return isinstance(classify_upload_error(exc), TransientUploadError)
