"""Progress lines are throttled but always say when a step reaches 100 %."""

from __future__ import annotations

from upload_jobs.jobs.progress import ProgressReport


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_reports_each_step_and_the_end_but_not_every_tick() -> None:
    lines: list[str] = []
    clock = FakeClock()
    progress = ProgressReport(lines.append, "Remux", min_seconds=5, min_step=25, clock=clock)
    for percent in range(0, 101):
        progress.percent(float(percent))
    assert lines == ["Remux: 25%", "Remux: 50%", "Remux: 75%", "Remux: 100%"]


def test_reports_slow_progress_after_the_interval() -> None:
    lines: list[str] = []
    clock = FakeClock()
    mb = 1024 * 1024
    progress = ProgressReport(
        lines.append, "Upload", total_bytes=100 * mb, min_seconds=5, min_step=25, clock=clock
    )
    progress.bytes_done(5 * mb)
    clock.now = 6
    progress.bytes_done(10 * mb)
    progress.bytes_done(11 * mb)
    progress.bytes_done(100 * mb)
    progress.bytes_done(100 * mb)
    assert lines == [
        "Upload: 10% (10.00 MB of 100.00 MB)",
        "Upload: 100% (100.00 MB of 100.00 MB)",
    ]
