"""A key belongs to one job, in the job table: same-named files of different folders get keys of
their own, a key another job holds is refused however many add it at once, and a table from
before the rule gets it once its shared keys are sorted out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import insert, text

from tests.support.command_line import invoke
from upload_jobs.errors import DuplicateObjectKeys, ErrorKind, ObjectKeyTaken
from upload_jobs.jobs.database import (
    _alembic_config,
    create_job_engine,
    dispose_engines,
    get_engine,
)
from upload_jobs.jobs.models import JobStatus, UploadJob, utcnow
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings

# What these test (the job table) does not depend on S3: moto only.
pytestmark = pytest.mark.moto_only


REPO_ROOT = Path(__file__).resolve().parents[2]


def said(words: str, output: str) -> bool:
    """Whether `output` says `words`, however rich wrapped the lines (even inside a path)."""
    return "".join(words.split()) in "".join(output.split())


def test_same_named_files_of_different_folders_get_their_own_keys(settings: Settings, clip) -> None:
    day1 = clip("faststart", "recordings/2026-11-23/merged.mp4")
    day2 = clip("faststart", "recordings/2026-11-24/merged.mp4")
    keys = []
    for source in (day1, day2):
        code, output = invoke("add", str(source), "--json")
        assert code == 0, output
        keys.append(json.loads(output)["object_key"])
    assert keys == ["videos/2026-11-23/merged.mp4", "videos/2026-11-24/merged.mp4"]


def test_a_key_another_job_holds_is_refused_at_add(settings: Settings, clip) -> None:
    first = clip("faststart", "a/talk.mp4")
    other = clip("faststart", "b/talk.mp4")
    assert invoke("add", str(first), "--key", "talks/keynote.mp4")[0] == 0

    code, output = invoke("add", str(other), "--key", "talks/keynote.mp4")
    assert code == 2, output
    assert said(
        f"The object key videos/talks/keynote.mp4 already belongs to upload job 1 ({first})", output
    )
    assert said("--key", output) and "Traceback" not in output
    code, output = invoke("add", str(other), "--key", "talks/keynote.mp4", "--json")
    assert code == 2 and json.loads(output)["error_kind"] == ErrorKind.KEY_CONFLICT
    # The same file again points at the job that already uploads it.
    code, output = invoke("add", str(first), "--key", "talks/keynote.mp4")
    assert code == 2 and said("retry it with `upload-jobs retry 1`", output)
    assert [job.id for job in JobStore(settings.database_url).list_jobs()] == [1]


def test_a_key_template_with_the_job_id_is_unique_by_construction(
    settings: Settings, clip, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPLOAD_JOBS_KEY_TEMPLATE", "{job_id}/{name}")
    from upload_jobs.settings import get_settings

    get_settings.cache_clear()
    sources = [clip("faststart", f"cam{n}/today/merged.mp4") for n in (1, 2)]
    keys = [json.loads(invoke("add", str(s), "--json")[1])["object_key"] for s in sources]
    assert keys == ["videos/1/merged.mp4", "videos/2/merged.mp4"]


ADD_AT_ONCE = """
import sys
from upload_jobs.jobs.store import JobStore
from upload_jobs.errors import ObjectKeyTaken
sys.stdin.readline()  # every process is ready: go
try:
    job = JobStore(sys.argv[1]).add_job(sys.argv[2], "videos/shared.mp4")
    print("ADDED", job.id)
except ObjectKeyTaken as refused:
    print("REFUSED", refused)
"""


def test_processes_adding_one_key_at_once_give_one_job(database_url: str, tmp_path: Path) -> None:
    get_engine(database_url)  # the schema exists before the race
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", ADD_AT_ONCE, database_url, str(tmp_path / f"{n}.mp4")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env=dict(os.environ),
        )
        for n in range(6)
    ]
    for racer in racers:  # all started (and importing) before any is told to add
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    answers = [racer.communicate(timeout=120) for racer in racers]

    outcomes = [out.split(" ", 1)[0] for out, _ in answers]
    assert sorted(outcomes) == ["ADDED"] + ["REFUSED"] * 5, answers
    assert all("already belongs to upload job" in out for out, _ in answers if "REFUSED" in out)
    assert len(JobStore(database_url).list_jobs()) == 1


def test_set_key_gives_a_failed_job_a_key_of_its_own(settings: Settings, clip) -> None:
    store = JobStore(settings.database_url)
    holder = store.add_job(str(clip("faststart", "a.mp4")), "videos/a.mp4", JobStatus.COMPLETED)
    job = store.add_job(str(clip("faststart", "b.mp4")), "videos/b.mp4", JobStatus.FAILED)

    code, output = invoke("set-key", str(job.id), "videos/a.mp4")
    assert code == 2 and said("already belongs to upload job 1", output)
    code, output = invoke("set-key", str(job.id), "2026/b.mp4", "--json")
    assert code == 0 and json.loads(output)["object_key"] == "videos/2026/b.mp4"
    code, output = invoke("set-key", str(holder.id), "videos/elsewhere.mp4")
    assert code == 1 and "already completed" in output
    assert store.get_job(holder.id or 0).object_key == "videos/a.mp4"


def database_at_0003_with_shared_keys(url: str) -> None:
    """A job table as the last release left it: keys shared by jobs of same-named files."""
    engine = create_job_engine(url)
    with engine.begin() as connection:
        config = _alembic_config(url)
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
        now = utcnow()
        rows = [
            ("/rec/2026-11-23/merged.mp4", "videos/merged.mp4", "completed"),
            ("/rec/2026-11-24/merged.mp4", "videos/merged.mp4", "completed"),
            ("/rec/2026-11-25/merged.mp4", "videos/merged.mp4", "failed"),
            ("/rec/talk.mp4", "videos/talk.mp4", "completed"),
        ]
        for source, key, status in rows:
            connection.execute(
                insert(UploadJob.__table__).values(  # type: ignore[arg-type]
                    source_path=source, object_key=key, status=status, attempts=1,
                    optimized_for_streaming=status == "completed", created_at=now,
                    updated_at=now, public_url=f"https://cdn/{key}" if status != "failed" else None,
                )
            )  # fmt: skip
    engine.dispose()


@pytest.fixture
def empty_database(database_url: str) -> str:
    """`database_url` with no tables at all (the fixture's PostgreSQL one is migrated)."""
    if database_url.startswith("postgresql"):
        with create_job_engine(database_url).begin() as connection:
            connection.execute(
                text("DROP TABLE IF EXISTS upload_attempt, upload_job, alembic_version")
            )
    dispose_engines()
    return database_url


def test_shared_keys_stop_the_migration_until_rekeyed(
    empty_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_at_0003_with_shared_keys(empty_database)
    with pytest.raises(DuplicateObjectKeys) as stopped:
        get_engine(empty_database)
    assert stopped.value.groups == {"videos/merged.mp4": [1, 2, 3]}
    assert "jobs 1, 2, 3 share videos/merged.mp4" in str(stopped.value)
    assert "upload-jobs db upgrade --rekey-duplicates" in str(stopped.value)

    monkeypatch.setenv("UPLOAD_JOBS_DATABASE_URL", empty_database)
    from upload_jobs.settings import get_settings

    get_settings.cache_clear()
    code, output = invoke("list")
    assert code == 1 and said("jobs 1, 2, 3 share videos/merged.mp4", output)
    code, output = invoke("db", "upgrade", "--rekey-duplicates")
    assert code == 0, output

    jobs = {job.id: job for job in JobStore(empty_database).list_jobs()}
    assert {i: (j.object_key, j.status) for i, j in jobs.items()} == {
        1: ("videos/merged.mp4", "completed"),  # the oldest keeps its key and its state
        2: ("videos/merged-job2.mp4", "failed"),  # its "completed" was not to be trusted
        3: ("videos/merged-job3.mp4", "failed"),
        4: ("videos/talk.mp4", "completed"),
    }
    assert jobs[2].error_kind == ErrorKind.KEY_CONFLICT and jobs[2].public_url is None
    assert "was shared with job 1" in (jobs[2].last_error or "")
    with pytest.raises(ObjectKeyTaken):
        JobStore(empty_database).add_job("/rec/another/merged.mp4", "videos/merged.mp4")
