"""One file going to one key: a single PUT, or a multipart upload streamed from the file whose
parts are aborted on every way out but success; written only if the key is as it was seen.

The condition (`If-None-Match: *` for a key that was empty, `If-Match: ETAG` for the job's own
object) makes the check before the write atomic where the endpoint honours it: AWS S3 and moto
do (moto not for `If-Match` on a multipart completion). An endpoint that refuses the headers as
unknown gets the write without them, once warned: the check before the write is then all there is.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from botocore import exceptions as bce

from upload_jobs.errors import KeyConflict
from upload_jobs.storage.failures import NO_SUCH_UPLOAD, classify_upload_error
from upload_jobs.storage.file_spans import FileSpan

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
# S3 limits for multipart uploads: parts of at least 5 MiB (but the last), at most 10,000 parts.
MIN_PART_BYTES = 5 * MiB
MAX_PARTS = 10_000
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
class Transfer:
    """One file going to one key, by a single PUT or by multipart."""

    client: S3Client
    bucket: str
    key: str
    path: Path
    size: int
    headers: dict[str, Any]
    on_progress: Callable[[int], None] | None
    condition: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def put(self) -> None:
        """One PUT of the whole file, under the condition."""

        def send(condition: dict[str, Any]) -> None:
            with self.path.open("rb") as body:
                self.client.put_object(
                    Bucket=self.bucket, Key=self.key, Body=body, **self.headers, **condition
                )

        self._conditionally(send)
        if self.on_progress is not None:
            self.on_progress(self.size)

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

    def multipart(self, chunk_size: int, concurrency: int) -> None:
        """Creates, fills and completes a multipart upload; aborts it on any way out but success."""
        part_size = max(chunk_size, math.ceil(self.size / MAX_PARTS))
        spans = [
            (n + 1, offset, min(part_size, self.size - offset))
            for n, offset in enumerate(range(0, max(self.size, 1), part_size))
        ]
        self._abort_left_behind()
        created = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=self.key, **self.headers
        )
        upload_id = created["UploadId"]
        completed = False
        try:
            parts = self._send_parts(upload_id, spans, concurrency)
            # The check that counts is at completion: the object appears only then.
            self._conditionally(
                lambda condition: self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=upload_id,
                    MultipartUpload={"Parts": parts}, **condition,
                )
            )  # fmt: skip
            completed = True
        finally:
            # `finally`, not `except Exception`: Ctrl-C must not leave billed parts behind.
            if not completed:
                self._abort_quietly(upload_id)

    def _send_parts(
        self, upload_id: str, spans: list[tuple[int, int, int]], concurrency: int
    ) -> list[CompletedPartTypeDef]:
        """Uploads the parts with at most `concurrency` in flight; returns them in order."""

        def send(number: int, offset: int, length: int) -> CompletedPartTypeDef:
            # Streamed from the file: memory does not grow with the chunk size.
            with FileSpan(self.path, offset, length) as body:
                response = self.client.upload_part(
                    Bucket=self.bucket, Key=self.key, UploadId=upload_id, PartNumber=number,
                    Body=cast("IO[bytes]", body),
                )  # fmt: skip
            logger.debug("Part %d of %s uploaded (%d bytes)", number, self, length)
            return {"PartNumber": number, "ETag": response["ETag"]}

        parts: list[CompletedPartTypeDef] = []
        uploaded = 0
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix="upload-part")
        pending = {pool.submit(send, *span): span[2] for span in spans}
        try:
            while pending:
                # Each part as it lands, for progress; a failed part raises at result().
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    uploaded += pending.pop(future)
                    parts.append(future.result())
                    if self.on_progress is not None:
                        self.on_progress(uploaded)
        except BaseException:
            # Parts not started yet are dropped, and the abort goes out at once, not after the
            # parts in flight (a stopped run gives its job back now): one of those that still
            # lands on the aborted upload fails, and any upload left open on the key is aborted
            # by the job's next run.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return sorted(parts, key=lambda part: part.get("PartNumber", 0))

    def _abort_left_behind(self) -> None:
        """Abort the multipart uploads open on this very key: a run of the same job that was
        killed left them (a key belongs to one job, and one run holds a job at a time)."""
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.key
        )
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload.get("Key") == self.key and upload.get("UploadId"):
                    logger.info("Aborting multipart upload %s of %s, left by a run that died",
                                upload["UploadId"], self)  # fmt: skip
                    self._abort_quietly(upload["UploadId"])

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
