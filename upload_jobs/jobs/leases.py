"""A claim that lives as long as its run: the lease is short and renewed in the background while
the run goes on, so a run that dies frees its job within one lease, and one that is stopped
(Ctrl-C, SIGTERM, a cancellation, the web process shutting down) gives its job back at once.

The run's steps call `check_lease()` where they are about to write (before the upload, between
parts, at each remux progress line, before the mark): a lease found lost, or an interruption
asked for from another thread, stops the run there.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from upload_jobs.jobs.models import JobStatus, UploadJob, as_utc, utcnow

if TYPE_CHECKING:
    from upload_jobs.jobs.attempt_report import AttemptReport
    from upload_jobs.jobs.claims import ClaimedJob
    from upload_jobs.jobs.store import JobStore

logger = logging.getLogger(__name__)


class RunStopped(BaseException):
    """The run stops before it writes anything more. A BaseException, like KeyboardInterrupt:
    no `except Exception` in a step may swallow it."""


class RunInterrupted(RunStopped):
    """Someone stopped the run (a signal, a cancellation, the web process shutting down)."""


class LeaseLost(RunStopped):
    """Another run holds the job now (this one stalled past its lease): it must not write."""


_current: ContextVar[HeldLease | None] = ContextVar("held_upload_job_lease", default=None)
_held: set[HeldLease] = set()
_held_lock = threading.Lock()


def check_lease() -> None:
    """Stop the run of this context here if its lease was lost or an interruption was asked
    for; a no-op outside a held lease."""
    held = _current.get()
    if held is not None:
        held.check()


def interrupt_held_leases(reason: str) -> int:
    """Ask every run of this process to stop at its next check (the web process and the sweep
    on Ctrl-C, where runs are in other threads); how many were asked."""
    with _held_lock:
        running = list(_held)
    for held in running:
        held.interrupt(reason)
    return len(running)


def interruption_reason(exc: BaseException) -> str | None:
    """What stopped a run, in words, when `exc` is an interruption (not a failure): a signal,
    a cancellation, a shutdown; None for an ordinary error."""
    if isinstance(exc, RunInterrupted):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted by Ctrl-C (SIGINT)"
    # Prefect's TerminationSignal (a BaseException carrying the signal), without importing it.
    if not isinstance(exc, Exception) and isinstance(getattr(exc, "signal", None), int):
        return "stopped by SIGTERM (a cancellation, or its worker or server stopping)"
    return None


@dataclass
class HeldLease:
    """The run's claim, renewed every `renew_seconds` to `lease` from now by a background thread
    until the block ends; an interruption ending the block releases the job as interrupted."""

    store: JobStore
    claim: ClaimedJob
    report: AttemptReport
    lease: timedelta
    renew_seconds: float

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._interrupted: str | None = None
        self._lost = False
        # The job as the interruption left it, once the block ended with one.
        self.released: UploadJob | None = None
        self._thread = threading.Thread(
            target=self._renew, name=f"lease-job-{self.claim.job_id}", daemon=True
        )

    def __hash__(self) -> int:
        return id(self)

    def __enter__(self) -> HeldLease:
        self._token = _current.set(self)
        with _held_lock:
            _held.add(self)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        with _held_lock:
            _held.discard(self)
        _current.reset(self._token)
        reason = interruption_reason(exc) if exc is not None else None
        if reason is not None and not isinstance(exc, LeaseLost):
            self._release(reason)

    def check(self) -> None:
        """Raise `LeaseLost` or `RunInterrupted` if the run must stop now."""
        if self._lost:
            raise LeaseLost(
                f"Upload job {self.claim.job_id} is held by another run now: this one stopped "
                "before writing anything more"
            )
        if self._interrupted is not None:
            raise RunInterrupted(self._interrupted)

    def interrupt(self, reason: str) -> None:
        """Ask the run to stop at its next check."""
        self._interrupted = reason

    def _renew(self) -> None:
        while not self._stop.wait(self.renew_seconds):
            try:
                still_held = self.store.renew_lease(self.claim, self.lease)
            except SQLAlchemyError as exc:  # a blip: the next renewal may get through in time
                logger.warning(
                    "Could not renew the lease of upload job %s: %s", self.claim.job_id, exc
                )
                continue
            if not still_held:
                self._lost = True
                logger.error("Upload job %s: the lease was lost", self.claim.job_id)
                return

    def _release(self, reason: str) -> None:
        """The job back to failed and due now, its attempt interrupted (the second Ctrl-C that
        cuts this short leaves the lease to run out)."""
        try:
            self.released = self.store.mark_interrupted(
                self.claim, self.report, f"The run was {reason}"
            )
        except Exception as exc:  # the lease runs out in its time: say so, keep the exit going
            logger.warning("Could not release upload job %s: %s", self.claim.job_id, exc)


def take_back_if_gone(store: JobStore, job: UploadJob) -> str | None:
    """Take an in-progress job back when its holder is gone (a process of this machine that no
    longer runs, or a lease that ran out); what was done, for people, or None."""
    owner = job.lease_owner
    if job.status != JobStatus.IN_PROGRESS or job.id is None or owner is None:
        return None
    expires = as_utc(job.lease_expires_at)
    if holder_gone_from_here(owner):
        pid = owner.split(":", 2)[1]
        reason = f"Taken back: the process that held it (pid {pid} on this machine) is gone"
    elif expires is not None and expires < utcnow():
        reason = f"Taken back: its lease ran out at {expires:%H:%M:%S} UTC (its run stopped)"
    else:
        return None
    if not store.take_back(job.id, owner, reason):
        return None  # it moved on meanwhile
    return f"Upload job {job.id}: {reason[0].lower()}{reason[1:]}."


def holder_gone_from_here(
    lease_owner: str | None, is_alive: Callable[[int], bool] | None = None
) -> bool:
    """Whether `lease_owner` (`host:pid:run`) names a process of this machine that is gone."""
    if not lease_owner or lease_owner.count(":") < 2:
        return False
    host, pid, _ = lease_owner.split(":", 2)
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not (is_alive or process_alive)(int(pid))


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (a zombie, killed but not reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc here: the signal said it exists
