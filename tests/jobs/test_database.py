"""The schema check on first use: Alembic's head, recorded once, and Alembic imported only to
migrate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text

from upload_jobs.jobs.database import SCHEMA_HEAD, dispose_engines, get_engine, migrations_dir
from upload_jobs.jobs.store import JobStore

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_schema_head_is_the_newest_migration() -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_HEAD, (
        "a migration was added: set SCHEMA_HEAD in upload_jobs/jobs/database.py to its revision"
    )


def test_first_use_migrates_and_later_processes_skip_alembic(database_url: str) -> None:
    with get_engine(database_url).connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
        assert list(versions) == [SCHEMA_HEAD]
    JobStore(database_url).add_job("/videos/a.mp4", "videos/a.mp4")
    dispose_engines()

    # A new process on the migrated database, as each flow run is: jobs readable, no Alembic.
    probe = (
        "import sys; from upload_jobs.jobs.store import JobStore; "
        f"print(len(JobStore({database_url!r}).list_jobs()), 'alembic' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "False"]
