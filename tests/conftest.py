"""Shared fixtures: a real job database (SQLite, and PostgreSQL when configured), S3 over HTTP
(moto's server, and a real Ceph RGW where its packages are installed), one Prefect test server
per session, and sample clips made with ffmpeg."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support.prefect_services import unused_services_off
from tests.support.s3_backends import (
    MOTO,
    RGW,
    S3_BACKENDS,
    S3Backend,
    backend_missing,
    running_backend,
)
from tests.support.serving import ServeProcess, delete_deployments
from upload_jobs.jobs.database import dispose_engines
from upload_jobs.media import samples
from upload_jobs.media.remux import resolve_ffmpeg
from upload_jobs.settings import Settings, get_settings
from upload_jobs.storage.spaces import ensure_bucket, make_s3_client

POSTGRES_URL = os.environ.get("UPLOAD_JOBS_TEST_POSTGRES_URL")
# Distinctive values: the secrets tests search every output for them.
TEST_ACCESS_KEY = "AKIATESTLEAKCHECK0001"
TEST_SECRET_KEY = "SECRETxyz-do-not-leak-4242"

# A Prefect server a developer runs on the default port must not change what the tests see: no
# test uses one unless it says so (tests/cli/test_first_contact.py tests the product's defaults).
os.environ["UPLOAD_JOBS_LOCAL_PREFECT_API_URL"] = ""

DATABASE_KINDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])
# For tests about S3, ffmpeg, crashes or workers rather than the database dialect (the store's
# own tests cover both): run once, on PostgreSQL when configured, as a scaled-out setup would.
one_database = pytest.mark.parametrize("database_url", [DATABASE_KINDS[-1]], indirect=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session, dropped at the end."""
    if not POSTGRES_URL:
        pytest.skip("UPLOAD_JOBS_TEST_POSTGRES_URL is not set")
    name = f"upload_jobs_test_{uuid.uuid4().hex[:10]}"
    admin_url = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield admin_url.set(database=name).render_as_string(hide_password=False)
    dispose_engines()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=DATABASE_KINDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty job database: SQLite in tmp_path, and PostgreSQL when configured."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jobs.db'}"
        dispose_engines()
        return
    url = request.getfixturevalue("postgres_url")
    from upload_jobs.jobs.database import get_engine

    with get_engine(url).begin() as connection:
        connection.execute(text("TRUNCATE upload_attempt, upload_job RESTART IDENTITY CASCADE"))
    yield url


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that talks to S3 runs against each backend (`[moto]`, `[rgw]`), unless it is
    marked `moto_only` (it talks to S3 only to set up, or tests moto itself)."""
    if "s3_server" in metafunc.fixturenames:
        only_moto = metafunc.definition.get_closest_marker("moto_only") is not None
        backends = [MOTO] if only_moto else list(S3_BACKENDS)
        metafunc.parametrize("s3_server", backends, indirect=True, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On RGW, a test that runs with both job databases keeps only PostgreSQL (as a scaled-out
    setup has): the databases' dialects are what its `[moto]` runs cover."""

    def params(item: pytest.Item) -> dict[str, object]:
        return dict(getattr(getattr(item, "callspec", None), "params", {}))

    def variant(item: pytest.Item, database: str) -> tuple[str, str]:
        others = {k: v for k, v in params(item).items() if k != "database_url"}
        return item.nodeid.split("[")[0], repr(sorted(others.items())) + database

    on_rgw = [item for item in items if params(item).get("s3_server") == RGW]
    with_postgres = {variant(item, "") for item in on_rgw if params(item).get("database_url")
                     == "postgresql"}  # fmt: skip
    dropped = [item for item in on_rgw if params(item).get("database_url") == "sqlite"
               and variant(item, "") in with_postgres]  # fmt: skip
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


@pytest.fixture(scope="session")
def s3_server(request: pytest.FixtureRequest) -> Iterator[S3Backend]:
    """An S3 server on 127.0.0.1 over real HTTP, for the whole session: moto's, or a real Ceph
    RGW (skipped, saying how to install it, where its packages are missing)."""
    name = getattr(request, "param", MOTO)
    if missing := backend_missing(name):
        pytest.skip(missing)
    with running_backend(name) as backend:
        yield backend


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Distinctive fake credentials through boto3's standard chain (environment)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


@pytest.fixture
def settings(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    database_url: str,
    s3_server: S3Backend,
    aws_credentials: None,
) -> Iterator[Settings]:
    """Settings pointing at this test's database, work dir and its own bucket."""
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    values = {
        "UPLOAD_JOBS_DATABASE_URL": database_url,
        "UPLOAD_JOBS_WORK_DIR": str(tmp_path / "work"),
        "UPLOAD_JOBS_ENDPOINT_URL": s3_server.endpoint_url,
        "UPLOAD_JOBS_BUCKET": bucket,
        "UPLOAD_JOBS_PUBLIC_BASE_URL": f"{s3_server.endpoint_url}/{bucket}",
        "UPLOAD_JOBS_UPLOAD_RETRY_DELAY_SECONDS": "0",
        "UPLOAD_JOBS_PRESET": "faststart",
        # Test clips remux and upload in well under the default 1 s: show every step's artifact.
        "UPLOAD_JOBS_PROGRESS_ARTIFACT_AFTER_SECONDS": "0",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    s3_server.allow(TEST_ACCESS_KEY, TEST_SECRET_KEY)
    get_settings.cache_clear()
    current = get_settings()
    ensure_bucket(make_s3_client(current), bucket)
    yield current
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One real Prefect server (prefect_test_harness) for every flow test in the session."""
    from prefect.testing.utilities import prefect_test_harness

    # The harness's server keeps its state in SQLite: fewer writers, fewer lock stalls.
    with pytest.MonkeyPatch.context() as env:
        for name, value in unused_services_off().items():
            env.setenv(name, value)
        with prefect_test_harness(server_startup_timeout=90):
            yield


@pytest.fixture
def served(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServeProcess]:
    """Both deployments served by `upload-jobs serve` in a subprocess with this test's settings
    (on the session's Prefect server, whose scheduler is off: serve says so after 5 s), runs
    picked every second."""
    monkeypatch.setenv("UPLOAD_JOBS_SCHEDULE_CHECK_SECONDS", "5")
    delete_deployments()
    process = ServeProcess(tmp_path / "serve.log")
    try:
        process.wait_until_serving()
        yield process
    finally:
        process.stop()
        delete_deployments()


def ffmpeg_binaries() -> dict[str, str]:
    """Each ffmpeg users have, by a name with its version: the one on PATH (Debian's 5.1, say)
    and the one imageio-ffmpeg bundles (9.0.2); one entry when they are the same file."""
    import imageio_ffmpeg

    found: dict[str, str] = {}
    for origin, binary in (("path", shutil.which("ffmpeg")), ("bundled", None)):
        binary = binary or (imageio_ffmpeg.get_ffmpeg_exe() if origin == "bundled" else None)
        if binary and os.path.realpath(binary) not in map(os.path.realpath, found.values()):
            found[f"{origin}-{ffmpeg_version(binary)}"] = binary
    return found


def ffmpeg_version(binary: str) -> str:
    """`5.1.9` (of `5.1.9-0+deb12u1`) or `9.0.2` (of `n9.0.2-17-g2a57...`): `ffmpeg -version`."""
    first = subprocess.run([binary, "-version"], capture_output=True, text=True).stdout
    if " version " not in first:
        return "unknown"
    return first.split(" version ", 1)[1].split(" ", 1)[0].split("-", 1)[0].removeprefix("n")


FFMPEG_BINARIES = ffmpeg_binaries()


@pytest.fixture(scope="session", params=sorted(FFMPEG_BINARIES))
def ffmpeg(request: pytest.FixtureRequest) -> str:
    """Each ffmpeg binary in turn (PATH's and the bundled one): tests of what ffmpeg does run
    with both, since their behaviour and messages differ."""
    return FFMPEG_BINARIES[request.param]


@pytest.fixture(scope="session")
def clip_library(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Sample clips generated once per session with lavfi by the ffmpeg the product would use;
    tests copy what they use."""
    ffmpeg = resolve_ffmpeg()
    folder = tmp_path_factory.mktemp("clips")
    return {
        "moov_at_end": samples.make_moov_at_end_mp4(folder / "moov-at-end.mp4", ffmpeg=ffmpeg),
        "faststart": samples.make_faststart_mp4(folder / "faststart.mp4", ffmpeg=ffmpeg),
        "mov_pcm": samples.make_mov_with_pcm_audio(folder / "pcm.MOV", ffmpeg=ffmpeg),
        "truncated": samples.make_truncated_mp4(folder / "truncated.mp4", ffmpeg=ffmpeg),
        "fragmented": samples.make_fragmented_mp4(folder / "fragmented.mp4", ffmpeg=ffmpeg),
    }


@pytest.fixture
def clip(clip_library: dict[str, Path], tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    """`clip(kind, relative_path)`: copy a sample clip to tmp_path/videos/relative_path.

    At teardown every copy must still hold its original bytes: sources are never modified.
    """
    copies: list[tuple[Path, str]] = []

    def copy(kind: str, relative_path: str) -> Path:
        target = tmp_path / "videos" / relative_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip_library[kind], target)
        copies.append((target, sha256_of(clip_library[kind])))
        return target

    yield copy
    for path, original in copies:
        assert path.is_file(), f"source video {path} was deleted"
        assert sha256_of(path) == original, f"source video {path} was modified"


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, to prove a source was not changed."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
