"""How an attempt made its upload stream-ready, and the multipart upload a later one resumes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upload_attempt") as batch:
        batch.add_column(sa.Column("optimization_path", sa.String(24)))
        batch.add_column(sa.Column("optimization_path_reason", sa.Text()))
        batch.add_column(sa.Column("multipart_upload_id", sa.Text()))
        batch.add_column(sa.Column("multipart_part_bytes", sa.BigInteger()))


def downgrade() -> None:
    with op.batch_alter_table("upload_attempt") as batch:
        batch.drop_column("multipart_part_bytes")
        batch.drop_column("multipart_upload_id")
        batch.drop_column("optimization_path_reason")
        batch.drop_column("optimization_path")
