"""Tables that fit the terminal: one line per row at 80 and 120 columns, long values shortened
in the middle, for the jobs list, the sweep report and reconcile's changes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rich.console import Console
from rich.text import Text

from tests.support.command_line import invoke
from upload_jobs.cli import output, presenters
from upload_jobs.cli.fitted_table import Column, FittedTable, fit_widths, middle_ellipsis
from upload_jobs.jobs.models import UploadJob
from upload_jobs.jobs.store import JobStore
from upload_jobs.jobs.sweeping import SweepReport
from upload_jobs.settings import Settings

WIDTHS = [80, 120]
BORDERS = tuple("┏┃┡│└")


def rendered(renderable: object, width: int) -> list[str]:
    """What a terminal `width` columns wide shows for `renderable`, line by line."""
    console = Console(width=width, record=True, emoji=False)
    console.print(renderable)
    return console.export_text().splitlines()


def table_rows(lines: list[str]) -> list[str]:
    """The lines of a printed table that hold its rows (not its title, header or borders)."""
    return [line for line in lines if line.startswith("│")]


@pytest.mark.parametrize(
    ("text", "width", "expected"),
    [
        ("recording.mp4", 20, "recording.mp4"),
        ("abcdefghij", 5, "ab…ij"),
        ("abcdefghij", 6, "abc…ij"),
        ("abcdefghij", 1, "…"),
        ("東京東京東京.mp4", 9, "東京….mp4"),  # wide characters take two cells
    ],
)
def test_middle_ellipsis_keeps_both_ends(text: str, width: int, expected: str) -> None:
    shortened = middle_ellipsis(Text(text), width)
    assert shortened.plain == expected
    assert shortened.cell_len <= width


def test_middle_ellipsis_keeps_styles() -> None:
    styled = Text.assemble(("source_missing", "red"), ": /a/long/path/to/the/video.mp4")
    shortened = middle_ellipsis(styled, 16)
    assert shortened.plain == "source_m…deo.mp4"
    assert [span.style for span in shortened.spans] == ["red"]


def test_the_widest_shrinkable_column_gives_way_first() -> None:
    columns = [Column("ID"), Column("FILE", shrinkable=True), Column("URL", shrinkable=True)]
    # 3 + 30 + 50 cells of content, 10 of borders: 93 cells into 80.
    assert fit_widths([3, 30, 50], columns, 80) == [3, 30, 37]
    assert fit_widths([3, 30, 50], columns, 40) == [3, 13, 14]
    # Below every floor (the headers), down to a few cells each; fixed columns never shrink.
    assert fit_widths([3, 30, 50], columns, 20) == [3, 3, 4]
    assert fit_widths([3, 30, 50], columns, 10) == [3, 3, 3]
    assert fit_widths([3, 30, 50], columns, 200) == [3, 30, 50]


def long_jobs() -> list[UploadJob]:
    folder = "/srv/recordings/2026-11-23/a folder with a long name/東京"
    return [
        UploadJob(
            id=7,
            source_path=f"{folder}/keynote, the full recording with questions.mp4",
            object_key="videos/keynote.mp4",
            status="completed",
            attempts=2,
            optimized_for_streaming=True,
            uploaded_size_bytes=1_234_567_890,
            public_url="https://my-videos.nyc3.cdn.digitaloceanspaces.com/videos/"
            "2026-11-23/keynote%2C%20the%20full%20recording%20with%20questions.mp4",
        ),
        UploadJob(
            id=123456,
            source_path=f"{folder}/gone.mp4",
            object_key="videos/gone.mp4",
            status="failed",
            attempts=5,
            error_kind="source_missing",
            last_error=f"Original video file not found: {folder}/gone.mp4",
        ),
        UploadJob(id=8, source_path="/a.mp4", object_key="videos/a.mp4", status="in_progress"),
    ]


@pytest.mark.parametrize("width", WIDTHS)
def test_jobs_table_keeps_one_line_per_job(width: int) -> None:
    lines = rendered(presenters.jobs_table(long_jobs()), width)
    assert max(map(len, lines)) <= width
    rows = table_rows(lines)
    assert [row.split("│")[1].strip() for row in rows] == ["7", "123456", "8"]
    assert "…" in rows[0] and rows[0].rstrip(" │").endswith(".mp4")  # both ends kept


def test_jobs_table_is_left_alone_when_it_fits() -> None:
    jobs = [UploadJob(id=1, source_path="/a.mp4", object_key="videos/a.mp4", status="pending")]
    assert "…" not in "\n".join(rendered(presenters.jobs_table(jobs), 80))


@pytest.mark.parametrize("width", WIDTHS)
def test_sweep_report_keeps_one_line_per_outcome(width: int) -> None:
    report = SweepReport(mode="local", picked=list(range(1, 400)), completed=list(range(1, 399)))
    lines = rendered(presenters.sweep_table(report), width)
    assert max(map(len, lines)) <= width
    assert len(table_rows(lines)) == len(report.rows())


def test_plain_strings_are_not_read_as_markup() -> None:
    table = FittedTable([Column("FILE")])
    table.add_row("[red]clip[/red] :smile:.mp4")
    assert "[red]clip[/red] :smile:.mp4" in "\n".join(rendered(table, 80))


@pytest.fixture(params=WIDTHS)
def terminal_width(request: pytest.FixtureRequest) -> Iterator[int]:
    """The CLI's console as wide as a terminal of that many columns."""
    saved = output.console.width
    output.console.width = request.param
    yield request.param
    output.console.width = saved


@pytest.mark.moto_only  # the tables' widths, not what S3 does
def test_list_and_reconcile_fit_the_terminal(settings: Settings, clip, terminal_width: int) -> None:
    store = JobStore(settings.database_url)
    long_name = "a recording whose name goes on and on, as recorders name them.mp4"
    for day in range(3):
        # Completed, and not in the (empty) bucket: reconcile would set each back to failed.
        source = clip("faststart", f"2026-11-2{day}/{long_name}")
        store.add_job(str(source), f"videos/2026-11-2{day}/{long_name}", "completed")

    code, output = invoke("list")
    assert code == 0
    assert max(map(len, output.splitlines())) <= terminal_width
    assert len(table_rows(output.splitlines())) == 3

    code, output = invoke("reconcile", "--dry-run")
    assert code == 0, output
    table = [line for line in output.splitlines() if line.startswith(BORDERS)]
    assert max(map(len, table)) <= terminal_width
    assert len(table_rows(table)) == 3
