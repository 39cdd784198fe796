"""No credential the product holds ever shows: not in logs at DEBUG (botocore included), not in
Prefect's flow runs, task runs, logs or artifacts, not on the jobs page or its API, not in the
CLI's --json output, not in job events, not in the errors the product raises; nor when the key
comes from a Prefect `AwsCredentials` block instead of the environment.

Each test sets distinctive values for every credential (AWS access key id, secret key and
session token; the web token; the PostgreSQL password), uses the real parts with them, collects
every text each part showed, and searches it all for the values. Each source is also checked for
the content it must hold, so that an empty capture cannot pass for a clean one.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from tests.conftest import one_database
from tests.support.job_events import wait_for_job_events
from tests.support.ports import closed_port_url
from tests.support.s3_backends import S3Backend
from tests.support.s3_fault_proxy import S3FaultProxy
from tests.support.secret_sightings import (
    Credentials,
    Sightings,
    cli_json,
    distinctive_credentials,
    echoing_store_message,
    prefect_console,
    read_prefect_server,
    read_web,
    unreachable_database_url,
)
from tests.support.settings_env import use_settings
from upload_jobs.errors import PermanentUploadError, TransientUploadError
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings, get_settings
from upload_jobs.storage import spaces
from upload_jobs.storage.credentials import forget_credentials_blocks
from upload_jobs.storage.ownership import KeyOwner

# Every logger whose DEBUG output could carry a credential: the AWS stack prints requests with
# their headers, SQLAlchemy its connections, Prefect its runs, the web stack its requests.
DEBUG_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "prefect", "upload_jobs",
                 "sqlalchemy", "alembic", "httpx", "uvicorn", "fastapi")  # fmt: skip


@pytest.fixture
def credentials(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, s3_server: S3Backend
) -> Iterator[Credentials]:
    """The distinctive credentials in the environment, as a user would set them."""
    values = distinctive_credentials(settings.database_url, s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", values.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", values.secret_key)
    monkeypatch.setenv("AWS_SESSION_TOKEN", values.session_token)
    monkeypatch.setenv("UPLOAD_JOBS_WEB_TOKEN", values.web_token)
    if values.db_password:
        # The test PostgreSQL trusts local connections: any password gets in, and the product
        # still carries it in every URL it handles.
        url = make_url(settings.database_url).set(password=values.db_password)
        monkeypatch.setenv("UPLOAD_JOBS_DATABASE_URL", url.render_as_string(hide_password=False))
    # One request per S3 call and one task retry: the failures below end in a second.
    monkeypatch.setenv("UPLOAD_JOBS_S3_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("UPLOAD_JOBS_UPLOAD_RETRIES", "1")
    get_settings.cache_clear()
    yield values
    get_settings.cache_clear()


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog at DEBUG for the root logger and for each library that could print a credential."""
    caplog.set_level(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in DEBUG_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    yield caplog
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def log_every_credential_verbatim(credentials: Credentials) -> None:
    """What a library does that logs a request's headers or a connection string as is."""
    for name, value in credentials.by_name().items():
        logging.getLogger("some.library").debug("header or URL with %s: %s", name, value)


def add_and_retry(sightings: Sightings, source: Path, ends: str) -> int:
    """`add` then `retry` with --json, which must end `ends` (completed or an error kind);
    the job's id."""
    _, added = cli_json(sightings, "add", str(source))
    code, outcome = cli_json(sightings, "retry", str(added["id"]))
    succeeded = ends == "completed"
    ended = outcome["job"]["status" if succeeded else "error_kind"]
    assert code == (0 if succeeded else 1) and ended == ends, outcome
    return int(added["id"])


def run_cli_scenario(
    sightings: Sightings,
    credentials: Credentials,
    s3_server: S3Backend,
    clip: Callable[[str, str], Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> list[int]:
    """Add, retry, sweep, list and show jobs with `--json`, through a success, a permanent and a
    transient S3 failure, a missing bucket and an unreachable job database; the jobs' ids."""
    settings = get_settings()
    # A successful run: remuxed, uploaded (progress artifacts), marked completed.
    completed = add_and_retry(sightings, clip("moov_at_end", "good.mp4"), "completed")

    # A permanent failure from a store that quotes the key id and session token back.
    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        message = echoing_store_message(credentials)
        proxy.fail_always(403, "InvalidAccessKeyId", message=message, methods={"PUT"})
        use_settings(monkeypatch, endpoint_url=proxy.endpoint_url)
        refused = add_and_retry(sightings, clip("faststart", "refused.mp4"), "upload_permanent")
    assert "InvalidAccessKeyId" in sightings.text("cli retry")

    # A transient failure: nothing listens at the endpoint.
    code, added = cli_json(sightings, "add", str(clip("faststart", "unreachable.mp4")))
    unreachable = added["id"]
    use_settings(monkeypatch, endpoint_url=closed_port_url())
    code, outcome = cli_json(sightings, "retry", str(unreachable))
    assert code == 1 and outcome["job"]["error_kind"] == "upload_transient", outcome
    use_settings(monkeypatch, endpoint_url=s3_server.endpoint_url)

    # The sweep on a bucket that does not exist: it stops at its bucket check.
    due = JobStore(settings.database_url).add_job(
        str(clip("faststart", "due.mp4")), "videos/due.mp4", JobStatus.FAILED
    )
    assert due.id is not None
    use_settings(monkeypatch, bucket=f"missing-{uuid.uuid4().hex[:8]}")
    code, report = cli_json(sightings, "sweep")
    assert code == 0 and "NoSuchBucket" in (report["stopped_early"] or ""), report
    use_settings(monkeypatch, bucket=settings.bucket)

    # The job database out of reach, its URL carrying the password; the sweep's flow fails.
    bad_url = unreachable_database_url(settings.database_url, tmp_path)
    use_settings(monkeypatch, database_url=bad_url)
    for command in (["list"], ["show", str(completed)], ["retry", str(due.id)], ["sweep"]):
        code, failure = cli_json(sightings, *command)
        assert code == 1 and "error" in failure, (command, failure)
    use_settings(monkeypatch, database_url=settings.database_url)

    jobs = [completed, refused, unreachable, due.id]
    for command in (["list"], ["db", "upgrade"], *(["show", str(job_id)] for job_id in jobs)):
        code, _ = cli_json(sightings, *command)
        assert code == 0, command
    return jobs


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
@one_database  # on PostgreSQL when configured: only there does the URL carry a password
def test_runs_pages_output_and_logs_never_show_a_credential(
    settings: Settings,
    credentials: Credentials,
    debug_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    s3_server: S3Backend,
    clip: Callable[[str, str], Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    since = datetime.now(UTC)
    sightings = Sightings()
    with prefect_console() as console:
        jobs = run_cli_scenario(sightings, credentials, s3_server, clip, monkeypatch, tmp_path)
        read_web(sightings, jobs)
        log_every_credential_verbatim(credentials)
        flow_runs = read_prefect_server(sightings, since)
        events = wait_for_job_events(since, jobs[:3], count=3)
        sightings.add("prefect events", *(event.model_dump_json() for event in events))
    sightings.add("prefect console", console.getvalue())
    sightings.add("logs", debug_logs.text)
    # Whatever else reached this process's file descriptors (subprocesses included).
    sightings.add("stdout and stderr", *capfd.readouterr())

    leaks = sightings.leaks(credentials)
    assert not leaks, "\n".join(leaks)
    # Each source held what it must, so that a missing capture cannot pass for a clean one.
    assert "Cannot use the job database" in sightings.text("cli list")
    assert "The sweep did not finish" in sightings.text("cli sweep")
    logs = sightings.text("logs")
    assert "Authorization" in logs and "Credential=***" in logs, "botocore DEBUG was captured"
    assert "X-Amz-Security-Token" in logs, "requests carried the session token"
    assert "NoSuchBucket" in logs and "Traceback" in logs
    assert "Access Key Id *** you provided" in logs, "the quoted key id was masked in tracebacks"
    assert logs.count("header or URL with") == len(credentials.by_name())
    assert "Claimed upload job" in sightings.text("prefect console")
    assert flow_runs >= 5  # three retries, two sweeps
    assert '"job_id":' in sightings.text("prefect flow runs")
    assert "InvalidAccessKeyId" in sightings.text("prefect task runs")
    prefect_logs = sightings.text("prefect logs")
    assert "Claimed upload job" in prefect_logs and "Access Key Id *** you" in prefect_logs
    assert "Access Key Id *** you" in sightings.text("prefect events")
    artifacts = sightings.text("prefect artifacts")
    assert f"upload-job-{jobs[0]}-uploading" in artifacts and "sweep-report" in artifacts
    web = sightings.text("web")
    assert "InvalidAccessKeyId" in web and "openapi" in web and "X-Upload-Jobs-Token" in web


@pytest.fixture
def block_credentials(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, s3_server: S3Backend
) -> Iterator[tuple[Credentials, str]]:
    """Distinctive credentials saved only in an `AwsCredentials` block (never in this process's
    environment, so only reading the block can teach the product to mask them), the runs given
    just the block's name; yields them with an echoing proxy's block name too."""
    from prefect_aws import AwsClientParameters, AwsCredentials

    values = distinctive_credentials(settings.database_url, s3_server)
    monkeypatch.setenv("UPLOAD_JOBS_WEB_TOKEN", values.web_token)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("UPLOAD_JOBS_S3_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("UPLOAD_JOBS_UPLOAD_RETRIES", "0")
    name = f"spaces-{uuid.uuid4().hex[:8]}"
    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        proxy.fail_always(
            403, "InvalidAccessKeyId", message=echoing_store_message(values), methods={"PUT"}
        )
        for block_name, endpoint in (
            (name, s3_server.endpoint_url),
            (f"{name}-echo", proxy.endpoint_url),
        ):
            AwsCredentials(
                aws_access_key_id=values.access_key,
                aws_secret_access_key=values.secret_key,
                aws_session_token=values.session_token,
                region_name="us-east-1",
                aws_client_parameters=AwsClientParameters(endpoint_url=endpoint),
            ).save(block_name, overwrite=True)
        use_settings(monkeypatch, aws_credentials_block=name)
        monkeypatch.delenv("UPLOAD_JOBS_ENDPOINT_URL")
        forget_credentials_blocks()
        yield values, name
    forget_credentials_blocks()
    get_settings.cache_clear()


@pytest.mark.flow
@pytest.mark.usefixtures("prefect_server")
@one_database
def test_credentials_from_a_block_never_show(
    settings: Settings,
    block_credentials: tuple[Credentials, str],
    debug_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    clip: Callable[[str, str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    credentials, block = block_credentials
    since = datetime.now(UTC)
    sightings = Sightings()
    with prefect_console() as console:
        completed = add_and_retry(sightings, clip("moov_at_end", "good.mp4"), "completed")
        # A permanent failure from a store quoting the block's key id and token back.
        use_settings(monkeypatch, aws_credentials_block=f"{block}-echo")
        refused = add_and_retry(sightings, clip("faststart", "refused.mp4"), "upload_permanent")
        use_settings(monkeypatch, aws_credentials_block=block)
        code, _ = cli_json(sightings, "reconcile")
        assert code == 0, "reconcile read the block too"
        jobs = [completed, refused]
        read_web(sightings, jobs)
        flow_runs = read_prefect_server(sightings, since)
        events = wait_for_job_events(since, jobs, count=2)
        sightings.add("prefect events", *(event.model_dump_json() for event in events))
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            # As the UI and `prefect block inspect` read it (the API hands secrets only on
            # request, to whoever may read blocks at all).
            document = client.read_block_document_by_name(
                block, "aws-credentials", include_secrets=False
            )
        block_document = document.model_dump_json()
    sightings.add("prefect console", console.getvalue())
    sightings.add("logs", debug_logs.text)
    sightings.add("stdout and stderr", *capfd.readouterr())

    leaks = sightings.leaks(credentials)
    assert not leaks, "\n".join(leaks)
    logs = sightings.text("logs")
    assert "Authorization" in logs and "Credential=***" in logs, "botocore DEBUG was captured"
    assert "X-Amz-Security-Token" in logs, "requests carried the block's session token"
    assert "Access Key Id *** you provided" in sightings.text("cli retry")
    assert flow_runs >= 2 and '"job_id":' in sightings.text("prefect flow runs")
    assert "Access Key Id *** you" in sightings.text("prefect logs")
    events_text = sightings.text("prefect events")
    assert "upload-job.completed" in events_text and "Access Key Id *** you" in events_text
    # The block itself, as the UI shows it: prefect-aws keeps the key id (which AWS treats as
    # not secret) and a session token as plain text, the secret masked; `upload-jobs setup`
    # refuses to save a session token (tests/cli/test_credentials_block.py).
    assert credentials.secret_key not in block_document
    assert '"aws_secret_access_key":"********"' in block_document
    assert "InvalidAccessKeyId" in sightings.text("web")


def test_errors_the_product_raises_never_name_a_credential(
    settings: Settings,
    credentials: Credentials,
    debug_logs: pytest.LogCaptureFixture,
    s3_server: S3Backend,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    sightings = Sightings()
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0" * 1024)

    def raised(expected: type[BaseException], call: Callable[[], object]) -> None:
        with pytest.raises(expected) as caught:
            call()
        sightings.add("errors", str(caught.value), repr(caught.value))

    def upload(client: Any, bucket: str) -> Callable[[], object]:
        return lambda: spaces.upload_video(
            client, bucket, video, "videos/v.mp4", owner=KeyOwner(1), acl="", cache_control=""
        )

    client = spaces.make_s3_client(get_settings())
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    raised(PermanentUploadError, upload(client, missing))
    raised(PermanentUploadError, lambda: spaces.check_bucket_access(client, missing))
    raised(PermanentUploadError, lambda: spaces.list_open_multipart_uploads(client, missing))
    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        message = echoing_store_message(credentials)
        proxy.fail_always(403, "SignatureDoesNotMatch", message=message, methods={"PUT"})
        echoing = spaces.make_s3_client(Settings(endpoint_url=proxy.endpoint_url))
        raised(PermanentUploadError, upload(echoing, settings.bucket))
    closed = spaces.make_s3_client(Settings(endpoint_url=closed_port_url()))
    raised(TransientUploadError, lambda: spaces.check_bucket_access(closed, settings.bucket))

    bad_url = unreachable_database_url(get_settings().database_url, tmp_path)
    raised(SQLAlchemyError, lambda: JobStore(bad_url).list_jobs())
    use_settings(monkeypatch, web_port="not-a-port", preset="turbo")
    raised(ValidationError, Settings)
    sightings.add("logs", debug_logs.text)

    leaks = sightings.leaks(credentials)
    assert not leaks, "\n".join(leaks)
    errors = sightings.text("errors")
    assert "NoSuchBucket" in errors and "SignatureDoesNotMatch" in errors
    assert "***" in errors, "the quoted key id and token were masked, not dropped unseen"
    assert "could not be reached" in errors
    assert "web_port" in errors and "preset" in errors
    assert "Authorization" in sightings.text("logs")
