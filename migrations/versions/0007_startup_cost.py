"""What each attempt's optimization bought: the startup cost of the source and of the upload,
how long the optimize step took, and a fallback's kind.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

STARTUP_COLUMNS = [
    (f"{side}_{name}", sa.Integer() if name == "startup_requests" else sa.BigInteger())
    for side in ("source", "uploaded")
    for name in ("startup_bytes", "moov_offset", "moov_bytes", "startup_requests")
]


def upgrade() -> None:
    with op.batch_alter_table("upload_attempt") as batch:
        batch.add_column(sa.Column("fallback_kind", sa.String(32)))
        batch.add_column(sa.Column("remux_seconds", sa.Float()))
        for name, kind in STARTUP_COLUMNS:
            batch.add_column(sa.Column(name, kind))


def downgrade() -> None:
    with op.batch_alter_table("upload_attempt") as batch:
        for name, _ in reversed(STARTUP_COLUMNS):
            batch.drop_column(name)
        batch.drop_column("remux_seconds")
        batch.drop_column("fallback_kind")
