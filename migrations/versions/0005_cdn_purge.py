"""Whether the CDN was told to forget an object's old bytes, on the attempt that replaced it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upload_attempt") as batch:
        batch.add_column(sa.Column("cdn_purge", sa.String(16)))
        batch.add_column(sa.Column("cdn_purge_detail", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("upload_attempt") as batch:
        batch.drop_column("cdn_purge_detail")
        batch.drop_column("cdn_purge")
