"""What Prefect's console prints of a logged ffmpeg command: the command, not emoji."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from prefect.logging.handlers import PrefectConsoleHandler

from tasks.console import logged_text_kept_as_text

COMMAND = "ffmpeg -i file:/v/a.mov -map 0:V:0 -map '0:a:0?' -c copy"


@pytest.fixture
def console_output() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = PrefectConsoleHandler(stream=stream)
    logger = logging.getLogger("upload_jobs.test_console")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def test_stream_specifiers_are_printed_as_they_were_logged(console_output: io.StringIO) -> None:
    logger = logging.getLogger("upload_jobs.test_console")
    logger.info("Running %s", COMMAND)
    assert COMMAND not in console_output.getvalue(), "Prefect's console made emoji of it"

    logged_text_kept_as_text()
    logger.info("Running %s", COMMAND)
    assert console_output.getvalue().splitlines()[-1].endswith(f"Running {COMMAND}")
