"""One body going to one key: a single PUT, or a multipart upload streamed from the source;
written only if the key is as it was seen (`storage.conditions`).

Every PUT and part carries its Content-MD5, so the endpoint verifies every byte it stores (AWS
S3, Spaces and Ceph RGW refuse a mismatch with `BadDigest`; moto does not check). A multipart
upload stopped by a failure a retry may fix, a signal or a cancellation is kept for the job's
next try, which sends only the parts missing (`storage.resume`); any other failure aborts it, so
no part is left behind unless it is kept on purpose. A kept upload the endpoint no longer has,
whatever it calls that (`NoSuchUpload`, RGW's `NoSuchKey`, a 500 at completion), is replaced by a
fresh one at once: the product's own record never makes a retry fail the same way again.

Endpoints that ignore a condition on the completing request (Ceph RGW 16.2; moto for `If-Match`)
leave a window between the last check of the key and the completion: the key is checked again
right before completing, so the window is that one round trip, and the object is verified by
HEAD (owner, size, sha256) after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass
from functools import partial
from typing import IO, TYPE_CHECKING, Any, cast

from botocore import exceptions as bce

from upload_jobs.errors import TransientUploadError, UploadJobError
from upload_jobs.storage.conditions import ConditionalWrite, ConditionRefused
from upload_jobs.storage.daemon_pool import DaemonPool
from upload_jobs.storage.failures import (
    classify_upload_error,
    describe_refusal,
    upload_is_gone,
)
from upload_jobs.storage.objects import OWNER_METADATA_KEY, find_existing_object
from upload_jobs.storage.resume import (
    BodyDigests,
    MultipartUpload,
    Span,
    content_md5,
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


class UploadGone(TransientUploadError):
    """The multipart upload was gone when it was completed (aborted by a sweep, by hand, or by
    the endpoint's own expiry): its parts must be sent again in a fresh one."""


@dataclass(frozen=True)
class SentParts:
    """How a multipart upload went: parts in all, parts an earlier try had stored, bytes sent."""

    total: int
    kept: int
    bytes_sent: int


@dataclass(frozen=True)
class Transfer:
    """One body going to one key, by a single PUT or by multipart, only while the key is as
    `write` expects."""

    write: ConditionalWrite
    body: UploadBody
    headers: dict[str, Any]
    on_progress: Callable[[int], None] | None

    @property
    def client(self) -> S3Client:
        """The S3 client the transfer uses."""
        return self.write.client

    @property
    def bucket(self) -> str:
        """The bucket written to."""
        return self.write.bucket

    @property
    def key(self) -> str:
        """The key written."""
        return self.write.key

    def __str__(self) -> str:
        return str(self.write)

    def put(self, digests: BodyDigests) -> None:
        """One PUT of the whole body, under the condition, with its Content-MD5."""
        md5 = digests.md5_of(Span(1, 0, self.body.size)) or self.body.md5(0, self.body.size)
        checksum: dict[str, Any] = {"ContentMD5": content_md5(md5)}

        def send(condition: dict[str, Any]) -> None:
            with self.body.open() as stream:
                self.client.put_object(
                    Bucket=self.bucket, Key=self.key, Body=cast("IO[bytes]", stream),
                    **self.headers, **checksum, **condition,
                )  # fmt: skip

        self.write.send(send)
        if self.on_progress is not None:
            self.on_progress(self.body.size)

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
        or an interruption stops it; otherwise, and for any other failure, it is aborted. An
        upload found gone at completion is replaced by a fresh one, once."""
        try:
            return self._fill_and_complete(chunk_size, concurrency, digests, resume, on_started)
        except UploadGone as gone:
            logger.warning("%s: starting a fresh multipart upload of %s", gone, self)
            return self._fill_and_complete(chunk_size, concurrency, digests, None, on_started)

    def _fill_and_complete(
        self,
        chunk_size: int,
        concurrency: int,
        digests: BodyDigests,
        resume: MultipartUpload | None,
        on_started: Callable[[MultipartUpload], bool] | None,
    ) -> SentParts:
        upload, kept = self._resumed(resume, digests)
        self._abort_left_behind(keep=upload.upload_id if upload else None)
        if upload is None:
            created = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, **self.headers
            )
            upload = MultipartUpload(
                created["UploadId"], self._part_bytes(digests, chunk_size), self.body.size,
                digests.sha256,
            )  # fmt: skip
        recorded = on_started is not None and on_started(upload)
        spans = upload.parts()
        missing = [span for span in spans if span.number not in kept]
        sent = sum(span.length for span in missing)
        try:
            parts = self._send_parts(
                upload, missing, concurrency, digests, already=self.body.size - sent
            )
            parts += [{"PartNumber": number, "ETag": f'"{etag}"'} for number, etag in kept.items()]
            parts.sort(key=lambda part: part.get("PartNumber", 0))
            self._complete(upload, parts)
        except UploadGone:
            raise  # nothing left to abort
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

    def _part_bytes(self, digests: BodyDigests, chunk_size: int) -> int:
        """The part size of a new upload: the one the digests were cut by when S3 allows it
        (each part's Content-MD5 is then known without reading it again), else `chunk_size`."""
        planned = MultipartUpload("", digests.part_bytes or 0, self.body.size, digests.sha256)
        if digests.part_bytes and usable_for(planned, self.body.size, digests.sha256) is None:
            return digests.part_bytes
        return part_size_for(self.body.size, chunk_size)

    def _complete(self, upload: MultipartUpload, parts: list[CompletedPartTypeDef]) -> None:
        """Completes the upload (the object appears only now) if the key is still as it was
        checked: checked once more right before, since some endpoints ignore the condition on
        this request. A failed completion whose object landed anyway counts as done."""
        if not self.write.still_as_expected():
            raise ConditionRefused(f"{self} changed while the parts were being sent")
        try:
            self.write.send(
                lambda condition: self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=upload.upload_id,
                    MultipartUpload={"Parts": parts}, **condition,
                )
            )  # fmt: skip
        except bce.ClientError as exc:
            if self._landed():  # a retried completion whose first try had worked
                logger.info("Completing multipart upload %s of %s answered %s, but the object "
                            "is stored", upload.upload_id, self, describe_refusal(exc))  # fmt: skip
                return
            if upload_is_gone(exc) or self._gone(upload):
                raise UploadGone(
                    f"Multipart upload {upload.upload_id} of {self} was gone when it was "
                    f"completed ({describe_refusal(exc)})"
                ) from exc
            raise

    def _landed(self) -> bool:
        """Whether the key now holds this very body, named for this job."""
        stored = find_existing_object(self.client, self.bucket, self.key)
        metadata = self.headers.get("Metadata", {})
        return (
            stored is not None
            and stored.size_bytes == self.body.size
            and stored.sha256 == metadata.get("sha256")
            and stored.owner == metadata.get(OWNER_METADATA_KEY)
        )

    def _gone(self, upload: MultipartUpload) -> bool:
        """Whether the endpoint no longer has the upload (ListParts says so, whatever its code)."""
        try:
            return stored_parts(self.client, self.bucket, self.key, upload.upload_id) is None
        except Exception:
            return False

    def _resumed(
        self, resume: MultipartUpload | None, digests: BodyDigests
    ) -> tuple[MultipartUpload | None, dict[int, str]]:
        """`resume` and the parts of it worth keeping, when it can carry these bytes; never an
        error: anything that stops it from being resumed starts a fresh upload instead."""
        if resume is None:
            return None, {}
        if why_not := usable_for(resume, self.body.size, digests.sha256):
            logger.info("Not resuming multipart upload %s of %s: %s; starting a fresh one",
                        resume.upload_id, self, why_not)  # fmt: skip
            self._abort_quietly(resume.upload_id)
            return None, {}
        try:
            stored = stored_parts(self.client, self.bucket, self.key, resume.upload_id)
        except Exception as exc:
            # Whatever the endpoint says about an upload the product recorded, it must not fail
            # every retry: the record is only a shortcut.
            error = classify_upload_error(exc, bucket=self.bucket)
            logger.warning("Could not list the parts of multipart upload %s of %s (%s): "
                           "starting a fresh one", resume.upload_id, self, error)  # fmt: skip
            return None, {}
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
        self,
        upload: MultipartUpload,
        spans: list[Span],
        concurrency: int,
        digests: BodyDigests,
        already: int,
    ) -> list[CompletedPartTypeDef]:
        """Uploads the parts with at most `concurrency` in flight; returns them as they landed.
        `already`: bytes stored by an earlier try, counted in the progress."""

        def send(span: Span) -> CompletedPartTypeDef:
            md5 = digests.md5_of(span) or self.body.md5(span.offset, span.length)
            # Streamed from the body: memory does not grow with the part size.
            with self.body.open(span.offset, span.length) as stream:
                response = self.client.upload_part(
                    Bucket=self.bucket, Key=self.key, UploadId=upload.upload_id,
                    PartNumber=span.number, Body=cast("IO[bytes]", stream),
                    ContentMD5=content_md5(md5),
                )  # fmt: skip
            logger.debug("Part %d of %s uploaded (%d bytes)", span.number, self, span.length)
            return {"PartNumber": span.number, "ETag": response["ETag"]}

        parts: list[CompletedPartTypeDef] = []
        uploaded = already
        if already and self.on_progress is not None:
            self.on_progress(uploaded)
        pool = DaemonPool(concurrency, name="upload-part")
        pending = {pool.submit(partial(send, span)): span.length for span in spans}
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
            pool.shutdown(wait=True, cancel=True)
            raise
        except BaseException:
            # Stopped: the run goes on at once, not after the parts in flight (a stopped run
            # gives its job back now); the next try lists what landed.
            pool.shutdown(wait=False, cancel=True)
            raise
        pool.shutdown(wait=True, cancel=False)
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
                if isinstance(exc, bce.ClientError) and upload_is_gone(exc):
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
