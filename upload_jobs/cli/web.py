"""`upload-jobs web` and `demo`: the jobs page, and the whole product on this machine."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Annotated

import typer
from rich.markup import escape

from upload_jobs.cli.output import JsonOption, console, friendly_errors
from upload_jobs.settings import get_settings
from upload_jobs.web.retries import RetryVia

HostOption = Annotated[
    str | None, typer.Option(help="Address to serve on (default: UPLOAD_JOBS_WEB_HOST, 127.0.0.1).")
]
PortOption = Annotated[
    int | None,
    typer.Option(min=0, max=65535, help="Port (default: UPLOAD_JOBS_WEB_PORT, 8080)."),
]


def web(
    host: HostOption = None,
    port: PortOption = None,
    retry_via: Annotated[
        RetryVia,
        typer.Option(
            help="Where retries run: the Prefect deployment, this process, or auto (the "
            "deployment when a Prefect server is configured and serves it)."
        ),
    ] = RetryVia.AUTO,
) -> None:
    """Serve the jobs page and its JSON API (docs at /docs) until Ctrl-C."""
    # Not Prefect: the page serves at once, and where retries run is decided in the background
    # (it imports Prefect, and may start a temporary server: seconds to a minute).
    from upload_jobs.web.deferred_retries import DeferredRetryQueue
    from upload_jobs.web.server import RetrySetup, WebServer

    def decide() -> RetrySetup:
        from upload_jobs.web.server import choose_retry_setup

        return choose_retry_setup(retry_via, settings.web_retry_workers, _notice)

    def say_where(setup: RetrySetup | None, error: Exception | None) -> None:
        said = setup.description if setup is not None else f"Retries cannot run: {error}"
        console.print(escape(said), highlight=False, soft_wrap=True)

    with friendly_errors(json_output=False):
        settings = get_settings()
        queue = DeferredRetryQueue(decide, say_where)
        deciding = "Deciding where retries run (Prefect, in the background)."
        server = WebServer(settings, RetrySetup(queue, None, deciding), host or settings.web_host,
                           _port(port))  # fmt: skip
        server.serve_until_interrupted(
            lambda url: console.print(
                f"Jobs page: {url} (JSON API docs: {url}/docs)\n{deciding}\nCtrl-C stops it.",
                highlight=False,
            )
        )


def _notice(message: str) -> AbstractContextManager[object]:
    """A line on the terminal (from a background thread: no spinner under the page's lines)."""
    console.print(escape(message), highlight=False, soft_wrap=True)
    return nullcontext()


def _port(port: int | None) -> int:
    return get_settings().web_port if port is None else port


def demo(
    web: Annotated[
        bool, typer.Option("--web", help="Then serve the jobs page until Ctrl-C.")
    ] = False,
    port: PortOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show the whole product on this machine: local S3 server, sample videos, retries."""
    from upload_jobs.cli.demo import run_demo

    with friendly_errors(json_output):
        exit_code = run_demo(
            console, json_output=json_output, web_port=_port(port) if web else None
        )
    raise typer.Exit(exit_code)
