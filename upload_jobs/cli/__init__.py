"""The `upload-jobs` command line: the Typer `app` (`app`), its command groups (`serving`,
`reconcile`, `demo`), how results and failures are printed (`output`, `presenters`,
`fitted_table`)."""

from upload_jobs.cli.app import app

__all__ = ["app"]
