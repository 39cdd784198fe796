"""Live progress is throttled to about one write a second, always ends at 100 %, never fails."""

from __future__ import annotations

from tests.jobs.test_progress import FakeClock
from upload_jobs.jobs.live_progress import Phase, ProgressUpdate, ThrottledProgress


def test_remux_percentages_are_passed_on_at_most_once_a_second_and_always_100() -> None:
    clock, seen = FakeClock(), []
    progress = ThrottledProgress(Phase.OPTIMIZING, [seen.append], clock=clock)
    for step in range(1, 100):  # ffmpeg reports four times a second here
        clock.now += 0.25
        progress.percent(float(step))
    progress.percent(100.0)
    # 99 readings over ~25 s: the first, then one a second (every 4th), and the final 100.
    assert [update.percent for update in seen] == [*range(1, 99, 4), 100]


def test_uploaded_bytes_carry_the_total_and_their_percentage() -> None:
    clock, seen = FakeClock(), []
    progress = ThrottledProgress(Phase.UPLOADING, [seen.append], total_bytes=400, clock=clock)
    progress.bytes_done(100)
    clock.now += 2
    progress.bytes_done(400)
    assert seen == [
        ProgressUpdate(Phase.UPLOADING, 25.0, 100, 400),
        ProgressUpdate(Phase.UPLOADING, 100.0, 400, 400),
    ]


def test_a_failing_sink_is_skipped_and_the_others_still_get_the_reading() -> None:
    seen: list[ProgressUpdate] = []

    def database_down(update: ProgressUpdate) -> None:
        raise ConnectionError("server closed the connection unexpectedly")

    progress = ThrottledProgress(Phase.UPLOADING, [database_down, seen.append], total_bytes=10)
    progress.bytes_done(10)  # must not raise: progress never fails the upload it describes
    assert [update.percent for update in seen] == [100.0]


def test_no_reading_goes_backwards_or_repeats() -> None:
    clock, seen = FakeClock(), []
    progress = ThrottledProgress(Phase.OPTIMIZING, [seen.append], clock=clock)
    for percent in (10.0, 10.0, 5.0, 100.0, 100.0):
        clock.now += 5
        progress.percent(percent)
    assert [update.percent for update in seen] == [10.0, 100.0]
