"""The `upload-jobs` command line: the Typer app, its commands in the order `--help` lists them.

Each command group is a module of its own; none imports Prefect, boto3 or FastAPI at the top, so
that `add`, `list` and `show` start in a few tenths of a second.
"""

from __future__ import annotations

import typer

from upload_jobs.cli.check_endpoint import check_endpoint
from upload_jobs.cli.jobs import add, list_jobs, set_key, show
from upload_jobs.cli.output import JsonUsageErrors
from upload_jobs.cli.reconcile import reconcile
from upload_jobs.cli.runs import retry, sweep
from upload_jobs.cli.schema import db_upgrade
from upload_jobs.cli.serving import serve, setup
from upload_jobs.cli.stats import stats
from upload_jobs.cli.web import demo, web

app = typer.Typer(
    name="upload-jobs",
    help="Retry failed video uploads to DigitalOcean Spaces, optimized for streaming.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.command(cls=JsonUsageErrors)(add)
app.command("list", cls=JsonUsageErrors)(list_jobs)
app.command("set-key", cls=JsonUsageErrors)(set_key)
app.command(cls=JsonUsageErrors)(show)
app.command(cls=JsonUsageErrors)(stats)
app.command(cls=JsonUsageErrors)(retry)
app.command(cls=JsonUsageErrors)(sweep)
app.command()(web)
app.command(cls=JsonUsageErrors)(demo)
db_app = typer.Typer(help="Manage the job database schema.", no_args_is_help=True)
db_app.command("upgrade", cls=JsonUsageErrors)(db_upgrade)
app.add_typer(db_app, name="db")
for command in (serve, setup, reconcile):
    app.command(cls=JsonUsageErrors)(command)
app.command("check-endpoint", cls=JsonUsageErrors)(check_endpoint)
