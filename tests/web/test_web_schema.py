"""The JSON API is what its OpenAPI schema says: schemathesis generates requests from the schema
(valid and invalid ones) against the app, with every check it has, over a job table holding
each kind of job; the body limits, 405s and the refusals' shape, by hand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as examples

from tests.support.web_app import LOOPBACK_HEADERS, HeldRetryQueue, web_client
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings
from upload_jobs.web.access import AccessPolicy
from upload_jobs.web.app import create_app
from upload_jobs.web.body_limits import DEFAULT_BODY_BYTES, LOGIN_BODY_BYTES

# What these test (the page and its API) does not depend on S3: moto only.
pytestmark = [
    pytest.mark.moto_only,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]
# schemathesis calls the app as `testserver`: the page answers loopback names only.
LOOPBACK_HOST = {"Host": "127.0.0.1"}
# Bounded: each operation gets this many generated requests per run of the suite.
EXAMPLES_PER_OPERATION = 40


# The app as `upload-jobs web` serves it on loopback; it reads the job table a test's settings
# name at each request. (Made once: schemathesis's lazy fixture does not work with pytest 9.)
APP = create_app(HeldRetryQueue(), AccessPolicy.for_binding("127.0.0.1", None))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, headers=LOOPBACK_HOST)


@pytest.fixture
def every_kind_of_job(settings: Settings, clip: Callable[[str, str], Path], tmp_path: Path) -> None:
    """A failed, a completed and a sourceless job in the test's job table."""
    store = JobStore(settings.database_url)
    store.add_job(str(clip("faststart", "ok.mp4")), "videos/ok.mp4", JobStatus.FAILED)
    store.add_job(str(clip("faststart", "done.mp4")), "videos/done.mp4", JobStatus.COMPLETED)
    store.add_job(str(tmp_path / "gone.mp4"), "videos/gone.mp4", JobStatus.FAILED)


@schema.parametrize()
@examples(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@pytest.mark.usefixtures("every_kind_of_job")
def test_every_answer_is_what_the_schema_says(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=LOOPBACK_HEADERS | LOOPBACK_HOST)


def test_login_takes_a_few_kilobytes_and_no_more(settings: Settings) -> None:
    with web_client(HeldRetryQueue(), host="0.0.0.0", token="token-for-the-login") as client:
        within = client.post("/login", content=b"token=" + b"x" * (LOGIN_BODY_BYTES - 6))
        assert within.status_code == 401, "read, and refused: not the token"

        huge = client.post("/login", content=b"token=" + b"x" * (300 * 1024 * 1024))
        assert huge.status_code == 413
        assert huge.json() == {
            "detail": f"Request body too large: this route takes at most {LOGIN_BODY_BYTES} bytes.",
            "error_kind": None,
        }
        assert "content-security-policy" in huge.headers, "refusals keep the security headers"

        def streamed() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            for _ in range(64):
                yield b"x" * 1024

        assert client.post("/login", content=streamed()).status_code == 413


def test_api_posts_take_no_body_to_speak_of(settings: Settings) -> None:
    with web_client(HeldRetryQueue()) as client:
        answer = client.post(
            "/api/jobs/retry-failed", headers=LOOPBACK_HEADERS,
            content=b"{}" + b" " * DEFAULT_BODY_BYTES,
        )  # fmt: skip
        assert answer.status_code == 413


def test_a_wrong_method_is_405_with_what_the_route_allows(settings: Settings) -> None:
    with web_client(HeldRetryQueue()) as client:
        answer = client.get("/api/jobs/retry-failed")
        assert (answer.status_code, answer.headers["allow"]) == (405, "POST")
        assert answer.json() == {"detail": "GET is not allowed here", "error_kind": None}
        options = client.options("/api/jobs/1/retry", headers=LOOPBACK_HEADERS)
        assert (options.status_code, options.headers["allow"]) == (405, "POST")
        deleted = client.delete("/api/jobs/1", headers=LOOPBACK_HEADERS)
        assert (deleted.status_code, deleted.headers["allow"]) == (405, "GET")
