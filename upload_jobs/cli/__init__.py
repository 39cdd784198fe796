"""The `upload-jobs` command line: the Typer `app` (`app`), its command groups (`serving`,
`reconcile`, `demo`), how results and failures are printed (`output`, `presenters`,
`fitted_table`)."""

from upload_jobs.bytecode import write_bytecode_once

write_bytecode_once()  # before the imports below: they are what gets written

from upload_jobs.cli.app import app  # noqa: E402

__all__ = ["app"]
