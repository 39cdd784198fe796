"""Alembic environment: `upload_jobs.jobs.database` hands in a connection; the `alembic` command
line gets one from UPLOAD_JOBS_DATABASE_URL (or `sqlalchemy.url`)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from upload_jobs.jobs.database import create_job_engine
from upload_jobs.jobs.models import SQLModel
from upload_jobs.settings import get_settings


def run_migrations_on(connection: Connection) -> None:
    # Batch mode lets later migrations alter tables on SQLite, which lacks most ALTER TABLE.
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations_on(connection)
else:
    url = context.config.get_main_option("sqlalchemy.url") or get_settings().database_url
    engine = create_job_engine(url)
    with engine.begin() as own_connection:
        run_migrations_on(own_connection)
    engine.dispose()
