"""Presets per job and multi-object uploads: the preset a job asks for (`add`/`retry
--preset`), and on each attempt its renditions (size, bitrate, PSNR, SSIM), the preset levels
it passed over, and how many objects it uploaded.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upload_job") as batch:
        batch.add_column(sa.Column("requested_preset", sa.String(16)))
    with op.batch_alter_table("upload_attempt") as batch:
        batch.add_column(sa.Column("renditions", sa.JSON()))
        batch.add_column(sa.Column("declined_levels", sa.JSON()))
        batch.add_column(sa.Column("uploaded_object_count", sa.Integer()))


def downgrade() -> None:
    with op.batch_alter_table("upload_attempt") as batch:
        batch.drop_column("uploaded_object_count")
        batch.drop_column("declined_levels")
        batch.drop_column("renditions")
    with op.batch_alter_table("upload_job") as batch:
        batch.drop_column("requested_preset")
