"""Live progress of a running attempt: phase, remux percent, uploaded bytes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upload_attempt") as batch:
        batch.add_column(sa.Column("phase", sa.String(24)))
        batch.add_column(sa.Column("progress_percent", sa.Float()))
        batch.add_column(sa.Column("bytes_done", sa.BigInteger()))
        batch.add_column(sa.Column("bytes_total", sa.BigInteger()))
        batch.add_column(sa.Column("progress_updated_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("upload_attempt") as batch:
        for name in ("progress_updated_at", "bytes_total", "bytes_done", "progress_percent", "phase"):
            batch.drop_column(name)
