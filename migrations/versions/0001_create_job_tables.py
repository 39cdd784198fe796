"""Create upload_job and upload_attempt.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upload_job",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("object_key", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text()),
        sa.Column("error_kind", sa.String(32)),
        sa.Column("optimized_for_streaming", sa.Boolean(), nullable=False,
                  server_default=sa.false()),
        sa.Column("optimization_preset", sa.String(16)),
        sa.Column("source_size_bytes", sa.BigInteger()),
        sa.Column("uploaded_size_bytes", sa.BigInteger()),
        sa.Column("public_url", sa.Text()),
        sa.Column("etag", sa.String(128)),
        sa.Column("lease_owner", sa.String(255)),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_upload_job_status", "upload_job", ["status"])
    op.create_table(
        "upload_attempt",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("upload_job.id"), nullable=False),
        sa.Column("attempt_number", sa.Integer(), nullable=False),
        sa.Column("flow_run_id", sa.String(64)),
        sa.Column("lease_owner", sa.String(255)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("optimized", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("optimization_preset", sa.String(16)),
        sa.Column("fallback_reason", sa.Text()),
        sa.Column("skipped_existing_object", sa.Boolean(), nullable=False,
                  server_default=sa.false()),
        sa.Column("error", sa.Text()),
        sa.Column("error_kind", sa.String(32)),
        sa.Column("source_size_bytes", sa.BigInteger()),
        sa.Column("uploaded_size_bytes", sa.BigInteger()),
        sa.Column("step_seconds", sa.JSON()),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_upload_attempt_job_id", "upload_attempt", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_upload_attempt_job_id", table_name="upload_attempt")
    op.drop_table("upload_attempt")
    op.drop_index("ix_upload_job_status", table_name="upload_job")
    op.drop_table("upload_job")
