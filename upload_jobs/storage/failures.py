"""boto3 and network failures as domain errors: transient when a retry may help, else permanent.

Messages name the cause and the setting to check, and never carry credential values.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from contextlib import contextmanager

import urllib3.exceptions
from botocore import exceptions as bce

from upload_jobs.errors import PermanentUploadError, TransientUploadError, UploadJobError
from upload_jobs.redaction import redact

_CREDENTIALS_HINT = "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile"
_BUCKET_HINT = "check UPLOAD_JOBS_BUCKET"
_PERMANENT_CODES: dict[str, str] = {
    "NoSuchBucket": _BUCKET_HINT,
    "InvalidBucketName": _BUCKET_HINT,
    "InvalidAccessKeyId": f"check the credentials: {_CREDENTIALS_HINT}",
    "SignatureDoesNotMatch": f"check the credentials: {_CREDENTIALS_HINT}",
    "AccessDenied": "check that the access key may write to this bucket",
    "AllAccessDisabled": "access to this bucket is disabled",
    "AccountProblem": "the storage account needs attention",
    "AccessControlListNotSupported": "the bucket refuses ACLs: change UPLOAD_JOBS_ACL",
    # A 501 is a 5xx, but a feature the store lacks will not appear on retry.
    "NotImplemented": "the storage service does not support this request",
}
# The multipart upload vanished (e.g. a sweep aborted it): a new attempt starts a new one.
NO_SUCH_UPLOAD = "NoSuchUpload"
# How endpoints say an upload id is gone: S3 and moto `NoSuchUpload`, Ceph RGW `NoSuchKey`.
_UPLOAD_GONE_CODES = {NO_SUCH_UPLOAD, "NoSuchKey"}
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                    "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable",
                    "RequestLimitExceeded", "TooManyRequests", "OperationAborted", "BadDigest",
                    "XAmzContentSHA256Mismatch", "IncompleteBody", NO_SUCH_UPLOAD}  # fmt: skip
_CREDENTIAL_ERRORS = (bce.NoCredentialsError, bce.PartialCredentialsError,
                      bce.CredentialRetrievalError, bce.ProfileNotFound)  # fmt: skip
_NETWORK_ERRORS = (bce.ConnectionError, bce.HTTPClientError, bce.IncompleteReadError,
                   urllib3.exceptions.HTTPError, http.client.HTTPException,
                   ConnectionError, TimeoutError)  # fmt: skip
_MAX_DETAIL_CHARS = 300
# What a code means, for refusals that come without a <Message> (Ceph RGW sends none).
_MEANINGS: dict[str, str] = {
    "AccessDenied": "access denied",
    "BadDigest": "the bytes received differ from their Content-MD5",
    "EntityTooLarge": "the object or part is larger than the service allows",
    "EntityTooSmall": "a part other than the last is smaller than 5 MiB",
    "InternalError": "the service failed inside",
    "InvalidAccessKeyId": "the access key is unknown",
    "InvalidArgument": "the service refused an argument of the request",
    "InvalidBucketName": "the bucket name is not valid",
    "InvalidDigest": "the Content-MD5 is not valid",
    "InvalidLocationConstraint": "the region is not one this endpoint creates buckets in",
    "InvalidPart": "a part is missing or holds other bytes",
    "InvalidPartOrder": "the parts are not in order",
    "InvalidRequest": "the service refused the request",
    "MalformedXML": "the service could not read the request's XML",
    "MissingContentLength": "the request had no Content-Length",
    "NoSuchBucket": "the bucket does not exist",
    "NoSuchKey": "no such object or multipart upload",
    "NoSuchUpload": "the multipart upload is gone (completed or aborted)",
    "NotImplemented": "the service does not implement this request",
    "PreconditionFailed": "the key is no longer as it was checked",
    "QuotaExceeded": "the account's storage quota is used up",
    "RequestTimeTooSkewed": "the system clock differs too much from the service's",
    "ServiceUnavailable": "the service is unavailable",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "SlowDown": "the service is throttling requests",
}


def classify_upload_error(
    exc: BaseException, *, bucket: str | None = None
) -> TransientUploadError | PermanentUploadError:
    """The domain error for a boto3/network failure: transient if a retry may help, else permanent.

    The caller raises it `from exc`; the message names the cause and the setting to check.
    """
    where = f"Upload to bucket '{bucket}' failed" if bucket else "Upload failed"
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return PermanentUploadError(f"{where}: no credentials found: {_CREDENTIALS_HINT}")
    if isinstance(exc, bce.ClientError):
        return _classify_client_error(exc, where)
    if isinstance(exc, _NETWORK_ERRORS):
        detail = _detail(f"{type(exc).__name__}: {exc}")
        return TransientUploadError(
            f"{where}: the storage endpoint could not be reached or dropped the connection "
            f"({detail}) — check UPLOAD_JOBS_ENDPOINT_URL and the network; retrying may help"
        )
    if isinstance(exc, bce.BotoCoreError):
        # The rest of botocore's own errors are configuration or parameter mistakes.
        return PermanentUploadError(f"{where}: {_detail(f'{type(exc).__name__}: {exc}')}")
    return TransientUploadError(f"{where}: unexpected {_detail(f'{type(exc).__name__}: {exc}')}")


def error_code(exc: bce.ClientError) -> str:
    """The S3 error code of a failed request (`NoSuchKey`, `PreconditionFailed`...), or ''."""
    return str(exc.response.get("Error", {}).get("Code") or "")


def http_status(exc: bce.ClientError) -> int | None:
    """The HTTP status of a failed request."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def upload_is_gone(exc: bce.ClientError) -> bool:
    """Whether a request about a multipart upload failed because the endpoint no longer has it."""
    return error_code(exc) in _UPLOAD_GONE_CODES or http_status(exc) == 404


def describe_refusal(exc: bce.ClientError) -> str:
    """`NoSuchKey (HTTP 404: no such object or multipart upload)`: the code, the status and
    what they mean, from the service's message or, when it sent none, from the code."""
    code, status = error_code(exc), http_status(exc)
    message = str(exc.response.get("Error", {}).get("Message") or "")
    meaning = _detail(message) if message else _MEANINGS.get(code, "")
    if code and code == str(status):  # a HEAD's bare status: botocore names the error by it
        code = ""
    facts = f"HTTP {status}" if status is not None else "no HTTP status"
    facts += f": {meaning}" if meaning else ""
    return f"{code} ({facts})" if code else facts


def _classify_client_error(
    exc: bce.ClientError, where: str
) -> TransientUploadError | PermanentUploadError:
    code, status = error_code(exc), http_status(exc)
    attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts") or 0
    summary = describe_refusal(exc)
    if attempts:
        summary += f" after {attempts + 1} attempts"
    if code in _PERMANENT_CODES:
        return PermanentUploadError(f"{where}: {summary} — {_PERMANENT_CODES[code]}")
    if code in _TRANSIENT_CODES or status in (408, 429) or (status or 0) >= 500:
        hint = "check the system clock" if code == "RequestTimeTooSkewed" else "retrying may help"
        return TransientUploadError(f"{where}: {summary} — {hint}")
    if status is not None and 400 <= status < 500:
        hint = (
            "check the access key's permissions" if status == 403
            else "a retry will not help; `upload-jobs check-endpoint` shows what this endpoint "
            "supports"
        )  # fmt: skip
        return PermanentUploadError(f"{where}: {summary} — {hint}")
    return TransientUploadError(f"{where}: {summary} — retrying may help")


def _detail(text: str) -> str:
    """Server- or library-provided text, shortened and with credential values removed."""
    text = redact(text)
    if len(text) > _MAX_DETAIL_CHARS:
        text = text[:_MAX_DETAIL_CHARS] + "…"
    return text


@contextmanager
def classified_upload_errors(bucket: str) -> Iterator[None]:
    """Re-raises any boto3 or network failure inside the block as a domain upload error."""
    try:
        yield
    except UploadJobError:
        raise
    except Exception as exc:
        raise classify_upload_error(exc, bucket=bucket) from exc
