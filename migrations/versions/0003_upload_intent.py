"""What an attempt is about to upload (its sha256), so reconcile can recognise the object later.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upload_attempt") as batch:
        batch.add_column(sa.Column("upload_sha256", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("upload_attempt") as batch:
        batch.drop_column("upload_sha256")
