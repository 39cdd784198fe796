"""Flow runs started in-process without Prefect's heartbeat thread, and why."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings


@contextmanager
def without_heartbeats() -> Iterator[None]:
    """Flow runs started inside the block (in this thread) send no heartbeats.

    Prefect joins the heartbeat thread when a run ends, and that thread sleeps in 1 s steps: every
    run pays up to 1 s at its end (3.8.8; in 3.9.1 a trivial flow run took 1.06 s with heartbeats
    and 0.06 s without, median of 5). A run started here has a person watching (the CLI's
    retry and sweep, the demo) or a process of its own (the page's local retries), and the job's
    lease, not a heartbeat, recovers a job whose run died.
    """
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
