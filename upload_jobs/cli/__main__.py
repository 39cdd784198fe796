"""`python -m upload_jobs.cli`: the same as the `upload-jobs` command."""

from upload_jobs.cli.app import app

app()
