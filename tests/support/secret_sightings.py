"""Credential leak checks: distinctive credentials, and every text the product showed, by source."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from io import StringIO
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import make_url
from typer.testing import CliRunner

# Imported before any CliRunner call: Prefect binds its console handler to sys.stderr at import,
# and CliRunner's stand-in stream is closed after each call.
import flows.retry_upload  # noqa: F401
from tests.support.s3_backends import S3Backend
from tests.support.web_app import HeldRetryQueue, web_client
from upload_jobs.cli import app
from upload_jobs.settings import get_settings
from upload_jobs.web.app import STATIC_DIR

T = TypeVar("T")
runner = CliRunner()


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


def distinctive_credentials(database_url: str, s3: S3Backend) -> Credentials:
    """Values nothing else holds, new for each test: masking is process-wide, so a value an
    earlier test registered must not make this one pass. The S3 key, secret and session token
    are ones the backend takes (RGW issues them through STS: random, and real)."""
    tag = uuid.uuid4().hex[:12]
    postgres = make_url(database_url).get_backend_name() == "postgresql"
    access_key, secret_key, session_token = s3.temporary_credentials(tag)
    return Credentials(
        access_key=access_key,
        secret_key=secret_key,
        session_token=session_token,
        web_token=f"leak-web-token-{tag}",
        db_password=f"leakDbPw{tag}" if postgres else None,
    )


@contextmanager
def prefect_console() -> Iterator[StringIO]:
    """What Prefect's console handlers print (its run logs, tracebacks included), captured."""
    from tasks.console import prefect_console_handlers

    handlers = prefect_console_handlers()
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
