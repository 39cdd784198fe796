"""Prefect's terminal log handlers, and keeping what they print as it was logged."""

from __future__ import annotations

import logging

from prefect.logging.handlers import PrefectConsoleHandler


def prefect_console_handlers() -> set[PrefectConsoleHandler]:
    """The handlers through which Prefect prints run logs to the terminal, on any logger."""
    return {
        handler
        for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        if isinstance(logger, logging.Logger)
        for handler in logger.handlers
        if isinstance(handler, PrefectConsoleHandler)
    }


def logged_text_kept_as_text() -> None:
    """Stop Prefect's console from turning `:name:` into emoji: an ffmpeg stream specifier such
    as `-map 0:a:0` printed as `-map '0🅰0'` cannot be copied back into a shell."""
    for handler in prefect_console_handlers():
        # Rich reads this per print; its Console takes `emoji` only when made, by Prefect.
        handler.console._emoji = False
