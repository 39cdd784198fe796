"""The measure step takes the layouts the optimize step read instead of walking the files again,
and measures the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from upload_jobs.jobs.measurement import MeasuredLayouts, measure_upload
from upload_jobs.media import startup
from upload_jobs.media.streaming import StreamingOptions, optimize_for_streaming
from upload_jobs.settings import Preset


@pytest.mark.parametrize("in_process", [True, False], ids=["moved", "remuxed"])
def test_known_layouts_are_not_walked_again(
    clip_library: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    in_process: bool,
) -> None:  # fmt: skip
    source = clip_library["moov_at_end"]
    options = StreamingOptions(in_process=in_process)
    result = optimize_for_streaming(source, tmp_path, Preset.FASTSTART, options=options)
    walked = measure_upload(source, result.body)
    known = MeasuredLayouts(result.source_layout, result.upload_layout)
    assert known.source is not None and known.upload is not None

    def no_second_walk(*_: object) -> None:
        raise AssertionError("the measure step walked a file the optimize step had read")

    monkeypatch.setattr(startup, "read_layout_of", no_second_walk)
    assert measure_upload(source, result.body, known) == walked
    assert walked.uploaded_startup is not None and walked.uploaded_startup.moov_first
