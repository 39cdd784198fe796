"""No credential the product holds ever shows: not in logs at DEBUG (botocore included), not in
Prefect's flow runs, task runs, logs or artifacts, not on the jobs page or its API, not in the
CLI's --json output, not in the errors the product raises.

Each test sets distinctive values for every credential (AWS access key id, secret key and
session token; the web token; the PostgreSQL password), uses the real parts with them, collects
every text each part showed, and searches it all for the values. Each source is also checked for
the content it must hold, so that an empty capture cannot pass for a clean one.
"""

from __future__ import annotations

import json
import logging
import socket
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from typer.testing import CliRunner

# Imported before any CliRunner call: Prefect binds its console handler to sys.stderr at import,
# and CliRunner's stand-in stream is closed after each call.
import flows.retry_upload  # noqa: F401
from tests.support.s3_fault_proxy import S3FaultProxy
from tests.support.web_app import HeldRetryQueue, web_client
from upload_jobs import spaces
from upload_jobs.cli import app
from upload_jobs.errors import PermanentUploadError, TransientUploadError
from upload_jobs.local_s3 import LocalS3Server
from upload_jobs.models import JobStatus
from upload_jobs.settings import Settings, get_settings
from upload_jobs.store import JobStore
from upload_jobs.web.app import STATIC_DIR

T = TypeVar("T")
runner = CliRunner()
# Every logger whose DEBUG output could carry a credential: the AWS stack prints requests with
# their headers, SQLAlchemy its connections, Prefect its runs, the web stack its requests.
DEBUG_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "prefect", "upload_jobs",
                 "sqlalchemy", "alembic", "httpx", "uvicorn", "fastapi")  # fmt: skip


@dataclass(frozen=True)
class Credentials:
    """The distinctive value of each credential the product can hold in one configuration."""

    access_key: str
    secret_key: str
    session_token: str
    web_token: str
    db_password: str | None  # SQLite has no password

    def by_name(self) -> dict[str, str]:
        """Each value under the name of the variable that carries it."""
        named = {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_SESSION_TOKEN": self.session_token,
            "UPLOAD_JOBS_WEB_TOKEN": self.web_token,
        }
        if self.db_password:
            named["database password"] = self.db_password
        return named


class Sightings:
    """Every text the product showed during a test, by where it showed it."""

    def __init__(self) -> None:
        self._texts: dict[str, list[str]] = defaultdict(list)

    def add(self, source: str, *texts: object) -> None:
        """Remember texts (anything but str is shown with repr) as seen in `source`."""
        self._texts[source] += [text if isinstance(text, str) else repr(text) for text in texts]

    def text(self, source: str) -> str:
        """Everything seen in `source`, one text a line."""
        return "\n".join(self._texts[source])

    def leaks(self, credentials: Credentials) -> list[str]:
        """Where each credential value shows, with a little context: empty when nowhere."""
        found = []
        for source, texts in self._texts.items():
            for text in texts:
                for name, value in credentials.by_name().items():
                    at = text.find(value)
                    if at >= 0:
                        found.append(f"{name} in {source}: …{text[max(0, at - 80) : at + 80]}…")
        return found


def distinctive_credentials(database_url: str) -> Credentials:
    """Values nothing else holds, new for each test: masking is process-wide, so a value an
    earlier test registered must not make this one pass."""
    tag = uuid.uuid4().hex[:12]
    postgres = make_url(database_url).get_backend_name() == "postgresql"
    return Credentials(
        access_key=f"AKIALEAK{tag.upper()}",
        secret_key=f"leakSecret/{tag}+Kq9Zw3VxTn",
        session_token=f"FwoGZXIvYXdzELeakToken{tag}//Qm8Rw+Xy=",
        web_token=f"leak-web-token-{tag}",
        db_password=f"leakDbPw{tag}" if postgres else None,
    )


@pytest.fixture
def credentials(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Credentials]:
    """The distinctive credentials in the environment, as a user would set them."""
    values = distinctive_credentials(settings.database_url)
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


@contextmanager
def prefect_console() -> Iterator[StringIO]:
    """What Prefect's console handlers print (its run logs, tracebacks included), captured."""
    from prefect.logging.handlers import PrefectConsoleHandler

    handlers = {
        handler
        for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        if isinstance(logger, logging.Logger)
        for handler in logger.handlers
        if isinstance(handler, PrefectConsoleHandler)
    }
    assert handlers, "Prefect's console handler is installed"
    captured = StringIO()
    files = {handler: handler.console.file for handler in handlers}
    for handler in handlers:
        handler.console.file = captured
    try:
        yield captured
    finally:
        for handler, file in files.items():
            handler.console.file = file


def use_settings(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    """Set `UPLOAD_JOBS_*` variables (named without the prefix); the product re-reads them."""
    for name, value in variables.items():
        monkeypatch.setenv(f"UPLOAD_JOBS_{name.upper()}", value)
    get_settings.cache_clear()


def closed_port_url() -> str:
    """An http:// endpoint on 127.0.0.1 where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def echoing_store_message(credentials: Credentials) -> str:
    """An error message that quotes the request's key id and token back, as some stores do."""
    return (
        f"The AWS Access Key Id {credentials.access_key} you provided does not exist in our "
        f"records (request carried x-amz-security-token:{credentials.session_token})"
    )


def unreachable_database_url(database_url: str, tmp_path: Path) -> str:
    """The job database URL gone wrong: PostgreSQL with a database that does not exist (password
    kept), SQLite on a path that is a folder."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return url.set(database=f"no_such_db_{uuid.uuid4().hex[:8]}").render_as_string(
            hide_password=False
        )
    folder = tmp_path / "a-folder-not-a-database"
    folder.mkdir()
    return f"sqlite:///{folder}"


def cli_json(sightings: Sightings, *args: str) -> tuple[int, Any]:
    """Run `upload-jobs ARGS --json` in-process; exit code and parsed stdout (all output seen)."""
    result = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    payload = json.loads(result.stdout)
    # Parsed and re-serialized too: a value split over lines by the console would still show.
    sightings.add(f"cli {args[0]}", result.output, json.dumps(payload, ensure_ascii=False))
    return result.exit_code, payload


def read_all(read: Callable[..., list[T]], **kwargs: Any) -> list[T]:
    """Every row of a paged Prefect read (the server answers at most 200 a call)."""
    rows: list[T] = []
    while page := read(**kwargs, limit=200, offset=len(rows)):
        rows += page
        if len(page) < 200:
            break
    return rows


def read_prefect_server(sightings: Sightings, since: datetime) -> int:
    """Flow runs started since `since` as the server stores them: parameters, state history,
    task runs (inputs, states), logs and artifacts. Returns how many flow runs were read."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterStartTime,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)  # logs still queued in this process reach the server
    with get_client(sync_client=True) as client:
        started = FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since))
        runs = read_all(client.read_flow_runs, flow_run_filter=started)
        ids = [run.id for run in runs]
        these = FlowRunFilter(id=FlowRunFilterId(any_=ids))
        for run in runs:
            sightings.add("prefect flow runs", run.model_dump_json())
            sightings.add("prefect flow runs", json.dumps(run.parameters))
            for state in client.read_flow_run_states(run.id):
                sightings.add("prefect flow runs", state.model_dump_json())
        for task_run in read_all(client.read_task_runs, flow_run_filter=these):
            sightings.add("prefect task runs", task_run.model_dump_json())
            for state in client.read_task_run_states(task_run.id):
                sightings.add("prefect task runs", state.model_dump_json())
        logs = read_all(
            client.read_logs, log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids))
        )
        sightings.add("prefect logs", *(log.message for log in logs))
        for artifact in read_all(client.read_artifacts, flow_run_filter=these):
            sightings.add("prefect artifacts", artifact.model_dump_json())
    return len(runs)


def read_web(sightings: Sightings, job_ids: list[int]) -> None:
    """The jobs page served beyond loopback with UPLOAD_JOBS_WEB_TOKEN: pages, API, docs, static
    files, refusals and the login, responses with their headers."""
    web_token = get_settings().web_token
    assert web_token is not None, "the page reads its token from the environment"
    token = web_token.get_secret_value()

    def seen(response: Any) -> int:
        sightings.add("web", f"{response.status_code} {dict(response.headers)}\n{response.text}")
        return int(response.status_code)

    good = {"X-Upload-Jobs-Token": token}
    with web_client(HeldRetryQueue(), host="0.0.0.0", token=token) as client:
        assert seen(client.get("/api/jobs")) == 401  # no token
        assert seen(client.get("/api/jobs", headers={"X-Upload-Jobs-Token": "guess"})) == 401
        assert seen(client.get("/", follow_redirects=False)) == 303
        assert seen(client.get("/login")) == 200
        assert seen(client.post("/login", data={"token": "guess"})) == 401
        assert seen(client.post("/login", data={"token": token}, follow_redirects=False)) == 303
        for path in ("/", "/docs", "/openapi.json", "/api/jobs", "/api/jobs?status=failed"):
            assert seen(client.get(path, headers=good)) == 200, path
        for job_id in job_ids:
            assert seen(client.get(f"/api/jobs/{job_id}", headers=good)) == 200
        for static in sorted(STATIC_DIR.iterdir()):
            assert seen(client.get(f"/static/{static.name}", headers=good)) == 200, static.name
        # State changes answer with job data too (the 409 quotes the completed job's link).
        assert seen(client.post("/api/jobs/retry-failed", headers=good)) == 202
        assert seen(client.post(f"/api/jobs/{job_ids[0]}/retry", headers=good)) == 409


def log_every_credential_verbatim(credentials: Credentials) -> None:
    """What a library does that logs a request's headers or a connection string as is."""
    for name, value in credentials.by_name().items():
        logging.getLogger("some.library").debug("header or URL with %s: %s", name, value)


def run_cli_scenario(
    sightings: Sightings,
    credentials: Credentials,
    s3_server: LocalS3Server,
    clip: Callable[[str, str], Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> list[int]:
    """Add, retry, sweep, list and show jobs with `--json`, through a success, a permanent and a
    transient S3 failure, a missing bucket and an unreachable job database; the jobs' ids."""
    settings = get_settings()
    # A successful run: remuxed, uploaded (progress artifacts), marked completed.
    code, added = cli_json(sightings, "add", str(clip("moov_at_end", "good.mp4")))
    completed = added["id"]
    code, outcome = cli_json(sightings, "retry", str(completed))
    assert code == 0 and outcome["job"]["status"] == "completed", outcome

    # A permanent failure from a store that quotes the key id and session token back.
    code, added = cli_json(sightings, "add", str(clip("faststart", "refused.mp4")))
    refused = added["id"]
    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        message = echoing_store_message(credentials)
        proxy.fail_always(403, "InvalidAccessKeyId", message=message, methods={"PUT"})
        use_settings(monkeypatch, endpoint_url=proxy.endpoint_url)
        code, outcome = cli_json(sightings, "retry", str(refused))
    assert code == 1 and outcome["job"]["error_kind"] == "upload_permanent", outcome
    assert "InvalidAccessKeyId" in outcome["message"]

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
def test_runs_pages_output_and_logs_never_show_a_credential(
    settings: Settings,
    credentials: Credentials,
    debug_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    s3_server: LocalS3Server,
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
    artifacts = sightings.text("prefect artifacts")
    assert f"upload-job-{jobs[0]}-uploading" in artifacts and "sweep-report" in artifacts
    web = sightings.text("web")
    assert "InvalidAccessKeyId" in web and "openapi" in web and "X-Upload-Jobs-Token" in web


def test_errors_the_product_raises_never_name_a_credential(
    settings: Settings,
    credentials: Credentials,
    debug_logs: pytest.LogCaptureFixture,
    s3_server: LocalS3Server,
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
            client, bucket, video, "videos/v.mp4", acl="", cache_control=""
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
