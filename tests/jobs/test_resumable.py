"""Which kept multipart upload a job's next attempt resumes: the rule that state the product
keeps never makes every retry fail the same way, as plain data."""

from __future__ import annotations

from upload_jobs.jobs.models import AttemptOutcome, UploadAttempt
from upload_jobs.jobs.resumable import still_resumable


def attempt(outcome: AttemptOutcome, upload_id: str = "u1", kind: str | None = None,
            error: str | None = None) -> UploadAttempt:  # fmt: skip
    return UploadAttempt(job_id=1, attempt_number=1, outcome=outcome,
                         multipart_upload_id=upload_id, error_kind=kind, error=error)  # fmt: skip


SLOW = ("upload_transient", "SlowDown (HTTP 503) — retrying may help")


def test_a_kept_upload_is_resumed_after_an_interruption_or_a_transient_failure() -> None:
    assert still_resumable([attempt(AttemptOutcome.INTERRUPTED)])
    assert still_resumable([attempt(AttemptOutcome.FAILED, "u1", *SLOW)])
    # Interrupted twice in a row: whoever stopped it decides, and it is kept.
    assert still_resumable([attempt(AttemptOutcome.INTERRUPTED)] * 2)


def test_not_once_it_became_the_object_or_after_a_permanent_failure() -> None:
    assert not still_resumable([])
    assert not still_resumable([attempt(AttemptOutcome.COMPLETED)])
    assert not still_resumable([attempt(AttemptOutcome.FAILED, "u1", "upload_permanent", "403")])


def test_not_after_two_attempts_in_a_row_failed_alike_with_it() -> None:
    twice = [
        attempt(AttemptOutcome.FAILED, "u1", *SLOW),
        attempt(AttemptOutcome.FAILED, "u1", *SLOW),
    ]
    assert not still_resumable(twice)
    # Another failure, or another upload before it: a new situation, resumed once more.
    other = attempt(AttemptOutcome.FAILED, "u1", "upload_transient", "connection dropped")
    assert still_resumable([attempt(AttemptOutcome.FAILED, "u1", *SLOW), other])
    assert still_resumable(
        [attempt(AttemptOutcome.FAILED, "u2", *SLOW), attempt(AttemptOutcome.FAILED, "u1", *SLOW)]
    )
