"""When a failed job is due again and how often it may run: one policy for the store (which
records `next_attempt_at`), the sweep (which skips exhausted jobs), job events and the triggers
that retry on them (which must wait exactly the backoff the store recorded)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from upload_jobs.settings import Settings

DEFAULT_BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=1)
DEFAULT_MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff doubling from `backoff_base` per failed attempt, capped at an hour; a job runs at
    most `max_attempts` times unless a person retries it."""

    backoff_base: timedelta = DEFAULT_BACKOFF_BASE
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    def backoff(self, attempts: int) -> timedelta:
        """How long a job that failed `attempts` times waits before it is due again."""
        exponent = max(0, min(attempts - 1, 20))
        return min(self.backoff_base * (2**exponent), BACKOFF_CAP)

    def may_retry(self, attempts: int) -> bool:
        """Whether a job tried `attempts` times has an automatic attempt left."""
        return attempts < self.max_attempts

    def backoffs_with_a_retry_left(self) -> list[timedelta]:
        """Each distinct backoff a failure can be followed by an automatic retry after."""
        return sorted({self.backoff(n) for n in range(1, self.max_attempts)})


def retry_policy(settings: Settings) -> RetryPolicy:
    """The policy `UPLOAD_JOBS_RETRY_BACKOFF_SECONDS` and `UPLOAD_JOBS_MAX_ATTEMPTS` set."""
    return RetryPolicy(
        backoff_base=timedelta(seconds=settings.retry_backoff_seconds),
        max_attempts=settings.max_attempts,
    )


def seconds_label(duration: timedelta) -> str:
    """A backoff as events label it and triggers match it: "60", "1.5"."""
    return f"{duration.total_seconds():g}"
