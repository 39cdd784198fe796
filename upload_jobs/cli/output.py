"""How the CLI reports failures: one readable line (or JSON) and an exit code, no traceback."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

# Typer 0.29 parses with its own copy of click: its exceptions and Context are only here.
from typer._click import ClickException, Context
from typer.core import TyperCommand

from deployments import PrefectUnavailable
from upload_jobs.cli import presenters
from upload_jobs.errors import (
    ErrorKind,
    JobNotFound,
    ObjectKeyTaken,
    UploadJobError,
    WebAccessRefused,
)
from upload_jobs.jobs.database import redacted_url
from upload_jobs.jobs.leases import RunInterrupted, interruption_reason
from upload_jobs.settings import get_settings

EXIT_FAILED = 1
EXIT_USAGE = 2
# Stopped by Ctrl-C or SIGTERM, as shells report a SIGINT (128 + 2) for both.
EXIT_INTERRUPTED = 130

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

# No emoji codes: a file named ":smile:.mp4" must be printed as it is named.
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)


def announce(message: str) -> AbstractContextManager[object]:
    """Show `message` on stderr while the block runs: a spinner on a terminal, else one line."""
    if err_console.is_terminal:
        return err_console.status(escape(message))
    err_console.print(escape(message), highlight=False, soft_wrap=True)
    return nullcontext()


def fail(message: str, code: int, json_output: bool, **extra: object) -> NoReturn:
    """Print `message` (or `{"error": ...}` with --json) and exit with `code`."""
    if json_output:
        presenters.print_json(console, {"error": message, **extra})
    else:
        err_console.print(f"[red]Error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


class JsonUsageErrors(TyperCommand):
    """A command whose usage errors (an id that is no number, an unknown status) are printed as
    `{"error": ...}` when --json is given, like every other error of a --json call."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: Context | None = None,
        **extra: Any,
    ) -> Context:
        """Parse `args`; a usage error exits 2 with JSON on stdout when --json is among them."""
        json_output = "--json" in args  # looked at first: parsing consumes `args`
        try:
            return super().make_context(info_name, args, parent, **extra)
        except ClickException as exc:
            if not json_output:
                raise
            fail(exc.format_message(), exc.exit_code, json_output)


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise RunInterrupted("stopped by SIGTERM")


@contextmanager
def friendly_errors(json_output: bool) -> Iterator[None]:
    """Turn known failures into one readable line and an exit code instead of a traceback; a
    SIGTERM stops the command like Ctrl-C, so its runs give their jobs back (exit 130)."""
    try:
        previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    except ValueError:  # not the main thread: signals are not ours to handle
        previous = None
    try:
        with _known_failures(json_output):
            yield
    except BaseException as exc:
        reason = interruption_reason(exc)
        if reason is None:
            raise
        fail(
            f"Stopped ({reason}): the jobs it was running were given back, failed and due "
            "now; retry them when you like.",
            EXIT_INTERRUPTED,
            json_output,
            error_kind=ErrorKind.INTERRUPTED,
        )
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def _known_failures(json_output: bool) -> Iterator[None]:
    """One readable line and an exit code for each failure the product raises on purpose."""
    try:
        yield
    except ObjectKeyTaken as exc:  # a key chosen for a new job, or a job's new key: usage
        fail(str(exc), EXIT_USAGE, json_output, error_kind=exc.error_kind)
    except JobNotFound as exc:
        fail(
            f"{exc}. See `upload-jobs list` for the ids.",
            EXIT_USAGE,
            json_output,
            error_kind=exc.error_kind,
        )
    except UploadJobError as exc:
        fail(str(exc), EXIT_FAILED, json_output, error_kind=exc.error_kind)
    except PrefectUnavailable as exc:
        # Nothing was run: a setup problem, like a bad setting, not a job that failed.
        fail(str(exc), EXIT_USAGE, json_output)
    except WebAccessRefused as exc:
        fail(str(exc), EXIT_USAGE, json_output)
    except ValidationError as exc:
        problems = "; ".join(
            f"UPLOAD_JOBS_{'_'.join(map(str, error['loc'])).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        fail(f"Invalid setting: {problems}", EXIT_USAGE, json_output)
    except SQLAlchemyError as exc:
        url = redacted_url(get_settings().database_url)
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        fail(
            f"Cannot use the job database {url}: {reason}. "
            "Check UPLOAD_JOBS_DATABASE_URL and that the database is running.",
            EXIT_FAILED,
            json_output,
        )
