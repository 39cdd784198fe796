"""PostgreSQL gone for a moment while a run marks its job: the mark is retried. Gone for longer
than the retries: the job is never completed without its object, nor failed forever with it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.states import State
from sqlalchemy.engine import make_url

from flows.retry_upload import retry_upload_job
from flows.sweep import sweep_failed_uploads
from tests.conftest import one_database, sha256_of
from tests.reliability.test_crash_recovery import wait_for
from tests.support.bucket_audit import one_job_outcome, store_writes_per_key
from tests.support.leases import expire_lease
from tests.support.s3_backends import S3Backend
from tests.support.s3_fault_proxy import S3FaultProxy
from tests.support.tcp_proxy import TcpProxy
from upload_jobs.jobs.database import dispose_engines
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings, get_settings

# What these test (the database's faults) does not depend on S3: moto only.
pytestmark = [
    pytest.mark.flow,
    pytest.mark.usefixtures("prefect_server"),
    one_database,
    pytest.mark.moto_only,
]

# The mark task retries after 1, 2 and 4 s (tasks.jobs.MARK_RETRY_DELAYS): a 3 s outage ends
# within its retries, a 10 s one outlasts them.
SHORT_OUTAGE_SECONDS = 3.0
LONG_OUTAGE_SECONDS = 10.0


@pytest.fixture
def database_proxy(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[TcpProxy]:
    """The job database reached through a TCP proxy that can cut it off (PostgreSQL only)."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("connection drops are a PostgreSQL test: set UPLOAD_JOBS_TEST_POSTGRES_URL")
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        monkeypatch.setenv("UPLOAD_JOBS_DATABASE_URL", proxied)
        get_settings.cache_clear()
        yield proxy
        dispose_engines()


@pytest.fixture
def s3_proxy(
    settings: Settings, s3_server: S3Backend, monkeypatch: pytest.MonkeyPatch
) -> Iterator[S3FaultProxy]:
    """S3 through the fault proxy, so a test can act while the upload is being verified."""
    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        monkeypatch.setenv("UPLOAD_JOBS_ENDPOINT_URL", proxy.endpoint_url)
        get_settings.cache_clear()
        yield proxy


def run_with_database_cut_at_mark(
    job_id: int, s3_proxy: S3FaultProxy, database: TcpProxy, seconds: float
) -> State:
    """Run the job's flow, holding the HEAD that verifies its upload for 1 s and cutting the
    database as it arrives: the run reaches its mark with the database gone."""
    s3_proxy.slow_next(1, 1.0, kinds={"head"}, after_kind="put_object")

    def cut() -> None:
        wait_for(lambda: s3_proxy.delayed, 60, "the upload to finish")
        database.cut(seconds)

    cutter = threading.Thread(target=cut, daemon=True)
    cutter.start()
    state: State = retry_upload_job(job_id, return_state=True)
    cutter.join(timeout=60)
    return state


def mark_task_runs(flow_run_id: UUID) -> int:
    """How many times the flow run's mark_job_completed task ran (1 + its retries)."""

    async def read() -> int:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
        return sum(run.run_count for run in runs if run.name.startswith("mark_job_completed"))

    return asyncio.run(read())


def add_failed_job(settings: Settings, source: Path) -> int:
    """A failed job for `source`, as the recording pipeline leaves it."""
    job = JobStore(settings.database_url).add_job(str(source), f"videos/{source.name}", "failed")
    assert job.id is not None
    return job.id


def test_a_short_database_outage_during_marking_costs_a_retry(
    settings: Settings,
    clip: Callable[[str, str], Path],
    database_proxy: TcpProxy,
    s3_proxy: S3FaultProxy,
    s3_server: S3Backend,
) -> None:
    source = clip("moov_at_end", "outage.mp4")
    original = sha256_of(source)
    job_id = add_failed_job(settings, source)

    state = run_with_database_cut_at_mark(job_id, s3_proxy, database_proxy, SHORT_OUTAGE_SECONDS)

    job = JobStore(get_settings().database_url).get_job(job_id)
    runs = mark_task_runs(state.state_details.flow_run_id)
    one_job_outcome(
        f"PostgreSQL dropped, refused {SHORT_OUTAGE_SECONDS:.0f} s at the mark",
        settings=settings,
        server=s3_server,
        job=job,
        source=source,
        original_sha256=original,
        details={
            "mark_task_runs": runs,
            "connections_cut": database_proxy.connections_cut,
            "connections_refused": database_proxy.connections_refused,
        },
    ).save("database-blip-at-mark")
    assert state.is_completed() and job.status == JobStatus.COMPLETED
    assert database_proxy.connections_refused >= 1, "the mark met the outage"
    assert runs >= 2, "the mark was retried"
    assert store_writes_per_key(s3_server, settings.bucket) == {job.object_key: 1}


def test_an_outage_longer_than_the_retries_leaves_the_job_to_the_next_sweep(
    settings: Settings,
    clip: Callable[[str, str], Path],
    database_proxy: TcpProxy,
    s3_proxy: S3FaultProxy,
    s3_server: S3Backend,
) -> None:
    source = clip("moov_at_end", "long outage.mp4")
    original = sha256_of(source)
    job_id = add_failed_job(settings, source)

    state = run_with_database_cut_at_mark(job_id, s3_proxy, database_proxy, LONG_OUTAGE_SECONDS)

    # The object is in the bucket; the job could not be marked either way, so it is still
    # in progress under the dead run's lease: not completed, and not failed for good.
    assert not state.is_completed()
    store = JobStore(get_settings().database_url)
    database_proxy.wait_until_accepting()
    assert store.get_job(job_id).status == JobStatus.IN_PROGRESS
    expire_lease(get_settings().database_url, job_id)
    # Reconcile off: this time the re-run itself finds the object (the crash test covers both).
    report = sweep_failed_uploads(limit=10, reconcile=False)

    job = store.get_job(job_id)
    [*_, last] = store.list_attempts(job_id)
    writes = store_writes_per_key(s3_server, settings.bucket)
    one_job_outcome(
        f"PostgreSQL gone {LONG_OUTAGE_SECONDS:.0f} s at the mark (past its retries)",
        settings=settings,
        server=s3_server,
        job=job,
        source=source,
        original_sha256=original,
        details={"reaped": report.reaped, "skipped_existing_object": last.skipped_existing_object},
    ).save("database-outage-at-mark")
    assert report.reaped == report.completed == [job_id]
    assert job.status == JobStatus.COMPLETED and last.skipped_existing_object
    assert writes == {job.object_key: 1}, "marked from the object found, not uploaded again"
