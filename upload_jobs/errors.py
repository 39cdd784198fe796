"""Domain errors, each mapped once to the `error_kind` recorded on a job."""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """Why a job or an attempt ended the way it did; stored in `upload_job.error_kind`."""

    SOURCE_MISSING = "source_missing"
    SOURCE_EMPTY = "source_empty"
    SOURCE_UNREADABLE = "source_unreadable"
    SOURCE_NOT_VIDEO = "source_not_video"
    SOURCE_CHANGED = "source_changed"
    INVALID_KEY = "invalid_key"
    OPTIMIZATION_FAILED = "optimization_failed"
    UPLOAD_TRANSIENT = "upload_transient"
    UPLOAD_PERMANENT = "upload_permanent"
    VERIFICATION_FAILED = "verification_failed"
    OBJECT_MISSING = "object_missing"
    KEY_CONFLICT = "key_conflict"
    JOB_NOT_FOUND = "job_not_found"
    JOB_NOT_CLAIMABLE = "job_not_claimable"
    WORKER_LOST = "worker_lost"
    INTERRUPTED = "interrupted"
    CREDENTIALS_UNAVAILABLE = "credentials_unavailable"
    INTERNAL = "internal_error"


class FailureClass(StrEnum):
    """Whether a failed attempt is worth retrying untouched (job events' `failure`)."""

    # The same run again may well succeed: the network, Spaces, a dead worker, a file still
    # being written.
    TRANSIENT = "transient"
    # Someone has to change something first: the file, the key, the credentials, the code.
    PERMANENT = "permanent"
    # Someone stopped it (Ctrl-C, SIGTERM, a cancellation): they decide whether it runs again.
    INTERRUPTED = "interrupted"


TRANSIENT_ERROR_KINDS = frozenset(
    {
        ErrorKind.UPLOAD_TRANSIENT,
        ErrorKind.VERIFICATION_FAILED,
        ErrorKind.SOURCE_CHANGED,
        ErrorKind.WORKER_LOST,
    }
)


def failure_class(kind: ErrorKind | str) -> FailureClass:
    """How a failure with this `error_kind` is classed; unknown kinds are permanent."""
    if kind == ErrorKind.INTERRUPTED:
        return FailureClass.INTERRUPTED
    return FailureClass.TRANSIENT if kind in TRANSIENT_ERROR_KINDS else FailureClass.PERMANENT


class UploadJobError(Exception):
    """Base of every error this project raises on purpose; `str(err)` is meant for people."""

    error_kind: ErrorKind = ErrorKind.INTERNAL


class SourceProblem(UploadJobError):
    """A source no upload can start from (missing, empty, unreadable, not a video): the run
    records it on the job and spends no attempt; someone must fix the file."""


class SourceMissing(SourceProblem):
    """The job's source video is not on disk."""

    error_kind = ErrorKind.SOURCE_MISSING

    def __init__(self, path: str) -> None:
        super().__init__(f"Original video file not found: {path}")
        self.path = path


class SourceEmpty(SourceProblem):
    """The job's source video exists but has no bytes."""

    error_kind = ErrorKind.SOURCE_EMPTY

    def __init__(self, path: str) -> None:
        super().__init__(f"Original video file is empty (0 bytes): {path}")
        self.path = path


class SourceUnreadable(SourceProblem):
    """The source path exists but cannot be read as a file (a folder, no permission)."""

    error_kind = ErrorKind.SOURCE_UNREADABLE


class SourceNotVideo(SourceProblem):
    """The source file does not start like an MP4/MOV video, so it is not uploaded as one."""

    error_kind = ErrorKind.SOURCE_NOT_VIDEO


class SourceChanged(UploadJobError):
    """The source was rewritten after the run checked it: nothing of the new bytes went up under
    the old ones' sha256 (a retry starts over with the file as it is then)."""

    error_kind = ErrorKind.SOURCE_CHANGED


class InvalidObjectKey(UploadJobError):
    """An object key that would escape its prefix or cannot be stored."""

    error_kind = ErrorKind.INVALID_KEY


class OptimizationFailed(UploadJobError):
    """The remux for streaming failed or produced an output that did not validate."""

    error_kind = ErrorKind.OPTIMIZATION_FAILED
    # Why the original went up instead, as the attempt's `fallback_kind` (stats count by it).
    fallback_kind = "optimization_failed"
    # Every preset level tried before the original went up (media.streaming.DeclinedLevel),
    # this failure last; empty when only one level was tried.
    declined: tuple[object, ...] = ()


class TransientUploadError(UploadJobError):
    """An upload failure worth retrying: 5xx, throttling, timeouts, dropped connections."""

    error_kind = ErrorKind.UPLOAD_TRANSIENT


class PermanentUploadError(UploadJobError):
    """An upload failure that a retry cannot fix: bad credentials, missing bucket, no access."""

    error_kind = ErrorKind.UPLOAD_PERMANENT


class CredentialsUnavailable(UploadJobError):
    """The AWS credentials block the settings name cannot be loaded from the Prefect server."""

    error_kind = ErrorKind.CREDENTIALS_UNAVAILABLE


class UploadVerificationFailed(UploadJobError):
    """The object in the bucket does not match what was uploaded."""

    error_kind = ErrorKind.VERIFICATION_FAILED


class ObjectMissing(UploadJobError):
    """A completed job's object is not in the bucket (or not the bytes the job uploaded)."""

    error_kind = ErrorKind.OBJECT_MISSING


class KeyConflict(UploadJobError):
    """The job's object key is held by something else (another job's object, a file put there
    by hand): it is never overwritten; the message names what holds it."""

    error_kind = ErrorKind.KEY_CONFLICT


class ObjectKeyTaken(KeyConflict):
    """Another job in the table already has this object key: a key belongs to one job."""

    def __init__(self, key: str, holder_id: int, holder_source: str, source: str) -> None:
        if holder_source == source:
            message = (
                f"Upload job {holder_id} already uploads {source} to {key}: retry it with "
                f"`upload-jobs retry {holder_id}`, or give this one its own key with --key"
            )
        else:
            message = (
                f"The object key {key} already belongs to upload job {holder_id} "
                f"({holder_source}): give this job its own with --key, or put {{job_id}} or "
                "{sha8} in UPLOAD_JOBS_KEY_TEMPLATE"
            )
        super().__init__(message)
        self.key, self.holder_id = key, holder_id


class DuplicateObjectKeys(KeyConflict):
    """Jobs added before keys were unique share keys: the schema cannot get its unique rule."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        shown = "; ".join(
            f"jobs {', '.join(map(str, ids))} share {key}" for key, ids in list(groups.items())[:5]
        )
        more = f" (and {len(groups) - 5} more keys)" if len(groups) > 5 else ""
        super().__init__(
            f"Jobs share object keys, so one job's upload can replace another's video: {shown}"
            f"{more}. Run `upload-jobs db upgrade --rekey-duplicates` to keep each key for its "
            "oldest job and give the others keys of their own (a completed one is set back to "
            "failed, to be uploaded there), then retry."
        )
        self.groups = groups


class JobNotFound(UploadJobError):
    """No job has this id."""

    error_kind = ErrorKind.JOB_NOT_FOUND

    def __init__(self, job_id: int) -> None:
        super().__init__(f"Upload job {job_id} not found")
        self.job_id = job_id


class JobNotClaimable(UploadJobError):
    """The job cannot be taken by this run."""

    error_kind = ErrorKind.JOB_NOT_CLAIMABLE


class JobInProgress(JobNotClaimable):
    """Another run holds the job's lease, or this run lost it."""


class JobAlreadyCompleted(JobNotClaimable):
    """The job is done: there is nothing to retry."""


class RetryAlreadyQueued(JobNotClaimable):
    """A retry of the job was requested and has not started yet."""


class WebAccessRefused(Exception):
    """The jobs page would be reachable from the network without a token (not a job's error: no
    error kind); the message says what to do."""


def error_kind_for(exc: BaseException) -> ErrorKind:
    """The job `error_kind` for any exception; unknown ones are internal errors."""
    if isinstance(exc, UploadJobError):
        return exc.error_kind
    return ErrorKind.INTERNAL
