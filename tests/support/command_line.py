"""The `upload-jobs` CLI run in the test's own process, as its tests and others use it."""

from __future__ import annotations

from typer.testing import CliRunner

# Imported here, not first inside a CliRunner call: Prefect binds its console log handler to
# sys.stderr at import, and CliRunner's stand-in stream is closed after each call.
import flows.retry_upload  # noqa: F401
from upload_jobs.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    """Run the CLI; stdout alone for --json (Prefect logs go to stderr), else both."""
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout if "--json" in args else result.output
