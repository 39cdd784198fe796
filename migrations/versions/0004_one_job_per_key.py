"""An object key belongs to one job: a unique index on upload_job.object_key.

Jobs added before share keys (two `merged.mp4` of different days both got `videos/merged.mp4`):
the migration lists them and stops, unless run with `upload-jobs db upgrade --rekey-duplicates`,
which keeps each key for its oldest job and gives the others keys of their own.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from datetime import UTC, datetime
from pathlib import PurePosixPath

import sqlalchemy as sa
from alembic import op

from upload_jobs.errors import DuplicateObjectKeys

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEX = "uq_upload_job_object_key"

jobs = sa.table(
    "upload_job",
    sa.column("id", sa.Integer),
    sa.column("object_key", sa.Text),
    sa.column("status", sa.String),
    sa.column("last_error", sa.Text),
    sa.column("error_kind", sa.String),
    sa.column("optimized_for_streaming", sa.Boolean),
    sa.column("public_url", sa.Text),
    sa.column("etag", sa.String),
    sa.column("completed_at", sa.DateTime(timezone=True)),
    sa.column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    connection = op.get_bind()
    groups: dict[str, list[int]] = {}
    shared = sa.select(jobs.c.object_key).group_by(jobs.c.object_key).having(sa.func.count() > 1)
    rows = connection.execute(
        sa.select(jobs.c.object_key, jobs.c.id)
        .where(jobs.c.object_key.in_(shared))
        .order_by(jobs.c.object_key, jobs.c.id)
    )
    for key, job_id in rows:
        groups.setdefault(key, []).append(job_id)
    if groups:
        if not op.get_context().config.attributes.get("rekey_duplicates"):
            raise DuplicateObjectKeys(groups)
        _rekey(connection, groups)
    op.create_index(INDEX, "upload_job", ["object_key"], unique=True)


def _rekey(connection: sa.Connection, groups: dict[str, list[int]]) -> None:
    """Each key stays with its oldest job; the others get `<stem>-job<id><ext>` beside it. A
    completed one is set back to failed: the shared object may hold another job's bytes."""
    taken = set(connection.execute(sa.select(jobs.c.object_key)).scalars())
    now = datetime.now(UTC)
    for key, (_oldest, *others) in groups.items():
        for job_id in others:
            new_key = _own_key(key, job_id, taken)
            taken.add(new_key)
            reason = (
                f"Its key {key} was shared with job {_oldest}; given its own key {new_key} by "
                "`upload-jobs db upgrade --rekey-duplicates`: the next retry uploads it there"
            )
            connection.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id)
                .values(object_key=new_key, updated_at=now)
            )
            connection.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id)
                .where(jobs.c.status == "completed")
                .values(
                    status="failed",
                    error_kind="key_conflict",
                    last_error=reason,
                    optimized_for_streaming=False,
                    public_url=None,
                    etag=None,
                    completed_at=None,
                    next_attempt_at=now,
                )
            )


def _own_key(key: str, job_id: int, taken: set[str]) -> str:
    path = PurePosixPath(key)
    candidate, n = str(path.with_name(f"{path.stem}-job{job_id}{path.suffix}")), 1
    while candidate in taken:  # someone chose that very name: count on
        n += 1
        candidate = str(path.with_name(f"{path.stem}-job{job_id}-{n}{path.suffix}"))
    return candidate


def downgrade() -> None:
    op.drop_index(INDEX, table_name="upload_job")
