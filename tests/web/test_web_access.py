"""Who may use the jobs page: loopback by default, the token everywhere else, a header on every
state change, escaped output and no secret in any response."""

from __future__ import annotations

import pytest

from tests.conftest import TEST_ACCESS_KEY, TEST_SECRET_KEY
from tests.support.command_line import invoke
from tests.support.web_app import LOOPBACK_HEADERS, HeldRetryQueue, web_client
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings
from upload_jobs.web.access import SESSION_COOKIE, WebAccessRefused, is_loopback
from upload_jobs.web.app import STATIC_DIR
from upload_jobs.web.retries import LocalRetryQueue
from upload_jobs.web.server import RetrySetup, WebServer

# What these test (the page and its API) does not depend on S3: moto only.
pytestmark = pytest.mark.moto_only


TOKEN = "web-token-7d1f0c9a2b4e4f8c"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("videos.example.com", False),
    ],
)
def test_only_loopback_addresses_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serving_beyond_loopback_without_a_token_is_refused(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = RetrySetup(HeldRetryQueue(), None, "held")
    with pytest.raises(WebAccessRefused, match="UPLOAD_JOBS_WEB_TOKEN"):
        WebServer(settings, setup, "0.0.0.0", 0)
    code, output = invoke("web", "--host", "0.0.0.0", "--retry-via", "local")
    assert code == 2
    assert "Refusing to serve the jobs page on 0.0.0.0 without a token" in output


def test_a_token_server_on_all_interfaces_starts_and_wants_the_token(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    monkeypatch.setenv("UPLOAD_JOBS_WEB_TOKEN", TOKEN)
    from upload_jobs.settings import get_settings

    get_settings.cache_clear()
    setup = RetrySetup(LocalRetryQueue(workers=1), None, "local")
    server = WebServer(get_settings(), setup, "0.0.0.0", 0).start()
    try:
        url = server.url.replace("0.0.0.0", "127.0.0.1")
        assert httpx.get(f"{url}/api/jobs").status_code == 401
        answer = httpx.get(f"{url}/api/jobs", headers={"X-Upload-Jobs-Token": TOKEN})
        assert answer.status_code == 200 and answer.json()["total"] == 0
    finally:
        server.stop()


def test_with_a_token_every_request_needs_it(settings: Settings) -> None:
    job = JobStore(settings.database_url).add_job("/r/a.mp4", "videos/a.mp4", JobStatus.FAILED)
    with web_client(HeldRetryQueue(), host="0.0.0.0", token=TOKEN) as client:
        for path in ("/api/jobs", f"/api/jobs/{job.id}", "/openapi.json", "/docs"):
            response = client.get(path, follow_redirects=False)
            assert response.status_code in (401, 303), path
            assert TOKEN not in response.text
        assert client.get("/", follow_redirects=False).headers["location"] == "/login"
        assert client.get("/static/app.js", follow_redirects=False).status_code == 303
        wrong = client.get("/api/jobs", headers={"X-Upload-Jobs-Token": "guess"})
        assert wrong.status_code == 401 and "X-Upload-Jobs-Token" in wrong.json()["detail"]
        assert client.post(f"/api/jobs/{job.id}/retry", headers=LOOPBACK_HEADERS).status_code == 401

        good = {"X-Upload-Jobs-Token": TOKEN}
        assert client.get("/api/jobs", headers=good).status_code == 200
        assert client.post(f"/api/jobs/{job.id}/retry", headers=good).status_code == 422

        # The login form sets a cookie good for reading the page, never for changing anything.
        refused = client.post("/login", data={"token": "guess"})
        assert refused.status_code == 401 and SESSION_COOKIE not in client.cookies
        login = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"] == "/"
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
        assert client.get("/").status_code == 200
        assert client.get("/api/jobs").status_code == 200
        assert client.post(f"/api/jobs/{job.id}/retry").status_code == 401
        assert client.post("/api/jobs/retry-failed").status_code == 401


def test_on_loopback_state_changes_need_the_header_and_foreign_hosts_are_refused(
    settings: Settings,
) -> None:
    job = JobStore(settings.database_url).add_job("/r/a.mp4", "videos/a.mp4", JobStatus.FAILED)
    queue = HeldRetryQueue()
    with web_client(queue) as client:
        assert client.get("/api/jobs").status_code == 200  # reading needs nothing on loopback
        # What a form on another site can send: no custom header, so no retry.
        for path in (f"/api/jobs/{job.id}/retry", "/api/jobs/retry-failed"):
            forged = client.post(path, data={"x": "1"})
            assert forged.status_code == 403 and "X-Upload-Jobs-Token" in forged.json()["detail"]
        assert client.get(f"/api/jobs/{job.id}/retry").status_code == 405  # links cannot either
        assert queue.started == []
        # DNS rebinding: a site's own name pointed at 127.0.0.1 reaches the server, not the API.
        rebound = client.get("/api/jobs", headers={"Host": "attacker.example:8080"})
        assert rebound.status_code == 400
        for host in ("localhost:8080", "127.0.0.1", "[::1]:8080"):
            assert client.get("/api/jobs", headers={"Host": host}).status_code == 200, host


def test_every_response_has_the_security_headers_and_no_external_assets(
    settings: Settings,
) -> None:
    with web_client(HeldRetryQueue()) as client:
        page = client.get("/")
        for response in (page, client.get("/api/jobs"), client.get("/api/jobs/99")):
            csp = response.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            # Videos play from the public base URL (completed jobs' links) and nowhere else.
            assert f"media-src {settings.resolved_public_base_url()}/" in csp.split("; ")
            assert response.headers["x-content-type-options"] == "nosniff"
        scripts = [client.get(f"/static/{path.name}").text for path in STATIC_DIR.glob("*.js")]
        style = client.get("/static/app.css").text
    assert len(scripts) >= 2
    for text in (page.text, style, *scripts):
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    for script in scripts:
        assert "innerHTML" not in script, "data must reach the DOM as text, never as HTML"


def test_hostile_names_come_back_as_data_and_no_secret_is_ever_shown(
    settings: Settings, tmp_path
) -> None:
    hostile = '<img src=x onerror="alert(1)">&amp;"\'.mp4'
    store = JobStore(settings.database_url)
    job = store.add_job(str(tmp_path / hostile), f"videos/{hostile}", JobStatus.FAILED, hostile)
    with web_client(HeldRetryQueue()) as client:
        listed = client.get("/api/jobs").json()["jobs"][0]
        assert listed["file_name"] == hostile and listed["last_error"] == hostile
        refused = client.post(f"/api/jobs/{job.id}/retry", headers=LOOPBACK_HEADERS)
        assert refused.status_code == 422 and hostile in refused.json()["detail"]
        everything = "\n".join(
            client.get(path).text
            for path in ("/", "/api/jobs", f"/api/jobs/{job.id}", "/openapi.json")
        )
    for secret in (TEST_ACCESS_KEY, TEST_SECRET_KEY):
        assert secret not in everything and secret not in refused.text
