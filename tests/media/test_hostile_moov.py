"""Hostile indexes are refused, never obeyed: the move and the startup measurement raise nothing
but the project's refusals, read each box once, and keep memory to about the moov's size."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import hostile_mp4
from upload_jobs.errors import OptimizationFailed
from upload_jobs.media import moov as moov_module
from upload_jobs.media.faststart import FaststartRefused, plan_faststart
from upload_jobs.media.moov import MAX_BOXES, MAX_DEPTH, MoovUnreadable, parse_moov
from upload_jobs.media.mp4 import read_layout
from upload_jobs.media.startup import startup_cost
from upload_jobs.media.streaming import StreamingPath, optimize_for_streaming
from upload_jobs.settings import Preset

# What the move says for each: a refusal naming the problem (and ffmpeg takes over).
REFUSALS = {
    "1,000 nested trak": f"more than {MAX_DEPTH} levels deep",
    "300 levels, 11,800 leaves": f"more than {MAX_DEPTH} levels deep",
    "16.8 MB of 8-byte boxes": f"more than {MAX_BOXES:,} boxes",
    "dref entry larger than its box": r"cannot be read box by box \(box 'url ' at offset 8",
    "stray bytes after dref entries": r"cannot be read box by box \(3 stray bytes",
    "stco counts too many": "declares",
    "last sample past its mdat": "does not lie inside a media box of the source",
}


@pytest.fixture
def moov_at_end(clip_library: dict[str, Path]) -> Path:
    return clip_library["moov_at_end"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", list(hostile_mp4.HOSTILE_SOURCES))
def test_the_move_refuses_a_hostile_index_and_the_measure_step_reads_what_it_can(
    moov_at_end: Path, tmp_path: Path, name: str
) -> None:
    source = hostile_mp4.HOSTILE_SOURCES[name](moov_at_end, tmp_path / "hostile.mp4")
    before = sha256(source)
    with pytest.raises(FaststartRefused, match=REFUSALS[name]):
        plan_faststart(source, read_layout(source))
    cost = startup_cost(source)  # never raises: what it cannot read is unknown (None)
    assert cost is None or cost.startup_bytes <= source.stat().st_size
    assert sha256(source) == before


@pytest.mark.parametrize("name", list(hostile_mp4.HOSTILE_SOURCES))
def test_a_hostile_source_is_remuxed_by_ffmpeg_or_refused_with_a_reason(
    moov_at_end: Path, tmp_path: Path, ffmpeg: str, name: str
) -> None:
    source = hostile_mp4.HOSTILE_SOURCES[name](moov_at_end, tmp_path / "hostile.mp4")
    work_dir = tmp_path / "work"
    try:
        result = optimize_for_streaming(source, work_dir, Preset.FASTSTART, ffmpeg)
    except OptimizationFailed as failed:  # the original goes up, with this reason
        assert str(failed)
        assert not any(work_dir.glob("*")), "no temp file is left"
        return
    assert result.path is StreamingPath.FFMPEG_REMUX
    assert result.reason, "why the move was not taken"
    assert result.temp_path is not None and read_layout(result.temp_path).is_faststart


def test_each_box_header_is_read_once_however_deep_and_wide(
    moov_at_end: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    levels, leaves = MAX_DEPTH - 4, 11_800  # as deep as the limit allows below moov/udta
    source = hostile_mp4.deep_and_wide(moov_at_end, tmp_path / "deep.mp4", levels, leaves)
    moov_bytes = hostile_mp4.top_level(source)[-1][1]
    reads = 0
    real_header = moov_module._box_header

    def counted(data: bytes, offset: int, end: int) -> tuple[str, int, int]:
        nonlocal reads
        reads += 1
        return real_header(data, offset, end)

    monkeypatch.setattr(moov_module, "_box_header", counted)
    tree = parse_moov(moov_bytes)
    boxes = 1 + sum(1 for _ in tree.walk())
    assert reads == boxes, "one header read per box: time linear in the moov's size"
    assert boxes > leaves


def test_too_many_boxes_are_refused_before_memory_grows_with_them(
    moov_at_end: Path, tmp_path: Path
) -> None:
    source = hostile_mp4.many_small_boxes(moov_at_end, tmp_path / "boxes.mp4")
    moov_size = read_layout(source).boxes[-1].size
    probe = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from upload_jobs.media.faststart import FaststartRefused, plan_faststart\n"
        "from upload_jobs.media.mp4 import read_layout\n"
        "from upload_jobs.media.startup import startup_cost\n"
        "source = Path(sys.argv[1]); layout = read_layout(source)\n"
        "def kib(field):\n"
        "    return int(Path('/proc/self/status').read_text().split(field)[1].split()[0])\n"
        "Path('/proc/self/clear_refs').write_text('5')  # the peak (VmHWM) starts again here\n"
        "before = kib('VmRSS:')\n"
        "try:\n    plan_faststart(source, layout)\nexcept FaststartRefused:\n    pass\n"
        "startup_cost(source)\n"
        "after = kib('VmHWM:')\n"
        "print(json.dumps({'grew_kib': after - before}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(source)], capture_output=True, text=True, check=True
    )
    grew = json.loads(done.stdout)["grew_kib"] * 1024
    print(f"\nmoov {moov_size / 2**20:.1f} MiB: peak RSS grew {grew / 2**20:.1f} MiB")
    assert grew < moov_size + 32 * 2**20, "about the moov's size (it was 40 times it)"


def test_a_cut_index_is_a_refusal_never_a_python_error() -> None:
    # Every prefix of a small nested index: each is a refusal or a tree, never IndexError etc.
    whole = hostile_mp4.nested("trak", 5, hostile_mp4.box("tkhd", b"\0" * 90))
    whole = hostile_mp4.box("moov", whole)
    for end in range(len(whole) + 1):
        cut = hostile_mp4.box("moov", whole[8:end]) if end > 8 else whole[:end]
        with contextlib.suppress(MoovUnreadable):
            parse_moov(cut)
