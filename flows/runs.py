"""Running `retry_upload_job` in this process (CLI, demo) and saying how it ended."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from flows.heartbeats import without_heartbeats
from flows.retry_upload import retry_upload_job
from tasks.console import prefect_console_handlers
from upload_jobs.errors import UploadJobError
from upload_jobs.jobs.retry_outcome import RetryOutcome, finished_run_outcome
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import get_settings


def run_retry_flow(job_id: int) -> RetryOutcome:
    """Run the retry flow for `job_id` here and now; never raises for a failed job."""
    expected_failures_in_one_line()
    with without_heartbeats():
        state = retry_upload_job(job_id, return_state=True)
    flow_run_id = str(state.state_details.flow_run_id) if state.state_details.flow_run_id else None
    store = JobStore(get_settings().database_url)
    return finished_run_outcome(
        store, job_id, flow_run_id, state.is_completed(), state.message, state.name
    )


class _ExpectedFailuresInOneLine(logging.Formatter):
    """Prefect's console format, but a failure this project raises on purpose (a missing source,
    a job already completed) without its traceback: its message says it all. The Prefect UI
    still gets the traceback; a bug (any other exception) still prints it here."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        """The record as Prefect prints it, minus the traceback of an `UploadJobError`."""
        if record.exc_info and isinstance(record.exc_info[1], UploadJobError):
            record = logging.makeLogRecord(record.__dict__ | {"exc_info": None, "exc_text": None})
        return self.inner.format(record)


def expected_failures_in_one_line() -> None:
    """Make Prefect's terminal output show expected failures in one line (see the formatter)."""
    for handler in prefect_console_handlers():
        if not isinstance(handler.formatter, _ExpectedFailuresInOneLine):
            handler.setFormatter(_ExpectedFailuresInOneLine(handler.formatter))


@contextmanager
def prefect_console_muted() -> Iterator[None]:
    """Keep Prefect's run logs off the terminal (they still reach the Prefect UI)."""
    handlers = prefect_console_handlers()
    levels = {handler: handler.level for handler in handlers}
    for handler in handlers:
        handler.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for handler, level in levels.items():
            handler.setLevel(level)
