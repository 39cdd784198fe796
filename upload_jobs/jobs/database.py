"""Engines for the job database, with the Alembic schema applied once on first use."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlmodel import Session

from upload_jobs.redaction import register_secrets

if TYPE_CHECKING:
    from alembic.config import Config

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()
# Arbitrary constant: every process migrating the same PostgreSQL database takes this lock.
_PG_MIGRATION_LOCK_ID = 7_304_118_226


def redacted_url(url: str) -> str:
    """The database URL with any password masked, safe to print."""
    return make_url(url).render_as_string(hide_password=True)


def migrations_dir() -> Path:
    """Where the Alembic scripts are: inside the wheel, or the repo's top-level `migrations/`."""
    package_dir = Path(__file__).resolve().parents[1]  # upload_jobs/, this module is in jobs/
    for candidate in (package_dir / "migrations", package_dir.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("Alembic migrations not found next to the upload_jobs package")


# The newest migration in migrations/versions (a test keeps the two in step). Checking it with one
# query, instead of asking Alembic, keeps Alembic's import (~0.5 CPU-s) out of every flow-run
# process and CLI call: Alembic is imported only when there is something to migrate.
SCHEMA_HEAD = "0008"


def _alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _is_current(connection: Connection) -> bool:
    if not inspect(connection).has_table("alembic_version"):
        return False
    revisions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
    return list(revisions) == [SCHEMA_HEAD]


def _upgrade_on(connection: Connection, rekey_duplicates: bool) -> None:
    from alembic import command

    config = _alembic_config(connection.engine.url.render_as_string(hide_password=False))
    config.attributes["connection"] = connection
    config.attributes["rekey_duplicates"] = rekey_duplicates  # read by 0004_one_job_per_key
    command.upgrade(config, "head")


def upgrade_schema(engine: Engine, rekey_duplicates: bool = False) -> None:
    """Bring the schema to the newest migration; safe when several processes start at once.

    `rekey_duplicates`: jobs that share an object key get keys of their own (0004); without it
    they stop the migration with `DuplicateObjectKeys`, which lists them."""
    with engine.connect() as connection:
        if _is_current(connection):
            return
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _PG_MIGRATION_LOCK_ID})
            connection.commit()
            try:
                if not _is_current(connection):
                    _upgrade_on(connection, rekey_duplicates)
                    connection.commit()
            except BaseException:
                connection.rollback()  # a migration that stopped leaves nothing half done
                raise
            finally:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:id)"), {"id": _PG_MIGRATION_LOCK_ID}
                )
                connection.commit()
        return
    with _file_lock(engine), engine.connect() as connection:
        if not _is_current(connection):
            _upgrade_on(connection, rekey_duplicates)
            connection.commit()


@contextmanager
def _file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate-lock")
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # The driver must not open transactions on its own: `_begin_immediately` does it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # The busy timeout makes concurrent claims wait for the write lock instead of failing;
    # WAL lets readers run beside the one writer.
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_immediately(connection: Connection) -> None:
    # A deferred transaction that reads and then writes gets SQLITE_BUSY at once, without
    # waiting, when another process wrote in between (WAL snapshot rule). Taking the write
    # lock at BEGIN makes every writer queue behind the busy timeout instead.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_job_engine(url: str) -> Engine:
    """A new engine for `url` (SQLite folders are created); callers own and dispose it."""
    parsed = make_url(url)
    # Drivers and their errors may quote connection parameters: mask the password in any log.
    register_secrets(parsed.password)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    elif parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # Plain postgresql:// would pick psycopg2, which is not a dependency: use psycopg 3.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _tune_sqlite)
        event.listen(engine, "begin", _begin_immediately)
    return engine


def get_engine(url: str) -> Engine:
    """The process-wide engine for `url`, migrated to the newest schema on first use."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = create_job_engine(url)
            upgrade_schema(engine)
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every cached engine (tests and the demo call this between databases)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def session_for(url: str) -> Iterator[Session]:
    """A session on the job database at `url`; commits are explicit."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        yield session
