"""Reliability tests inject faults into S3, ffmpeg, the flow process and the job database."""

from __future__ import annotations

import pytest

from tests.conftest import DATABASE_KINDS

# These tests are about S3, ffmpeg and crashes, not the database dialect (the store's own tests
# cover both): each runs once, on PostgreSQL when it is configured, as a scaled-out setup would.
one_database = pytest.mark.parametrize("database_url", [DATABASE_KINDS[-1]], indirect=True)
