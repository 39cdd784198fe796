"""Job events as a Prefect server stored them, waited for (its event persister writes in
batches, every few seconds)."""

from __future__ import annotations

import time
from datetime import datetime

from prefect.client.orchestration import get_client
from prefect.events.filters import (
    EventFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventResourceFilter,
)
from prefect.events.schemas.events import ReceivedEvent
from prefect.events.worker import EventsWorker

from upload_jobs.jobs.events import job_resource_id

EVENTS_TIMEOUT = 60.0


def job_events(since: datetime, job_ids: list[int]) -> list[ReceivedEvent]:
    """The `upload-job.*` events about these jobs stored since `since`, oldest first."""
    query = EventFilter(
        occurred=EventOccurredFilter(since=since),
        event=EventNameFilter(prefix=["upload-job."]),
        resource=EventResourceFilter(id=[job_resource_id(job_id) for job_id in job_ids]),
    )
    with get_client(sync_client=True) as client:
        page = client.read_events(query, limit=50)
        events = list(page.events)
        while page.next_page is not None:
            page = client.read_events_page(str(page.next_page))
            events.extend(page.events)
    return sorted(events, key=lambda event: event.occurred)


def wait_for_job_events(since: datetime, job_ids: list[int], count: int) -> list[ReceivedEvent]:
    """At least `count` events about these jobs, once the server has them all."""
    EventsWorker.drain_all(timeout=10)  # what this process emitted has left for the server
    deadline = time.monotonic() + EVENTS_TIMEOUT
    while True:
        events = job_events(since, job_ids)
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.5)
