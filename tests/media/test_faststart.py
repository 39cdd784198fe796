"""Faststart in process: the moved file's packets are the source's (ffmpeg's framemd5), its boxes
say faststart, and whatever the move cannot prove safe goes to the ffmpeg remux with the reason."""

from __future__ import annotations

import hashlib
import shutil
from array import array
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import mp4_files
from upload_jobs.media import faststart, samples
from upload_jobs.media.faststart import FaststartRefused, plan_faststart
from upload_jobs.media.moov import chunk_offset_tables, parse_moov
from upload_jobs.media.mp4 import read_layout, read_layout_of
from upload_jobs.media.streaming import StreamingOptions, StreamingPath, optimize_for_streaming
from upload_jobs.settings import Preset


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def written(body_source: Path, tmp_path: Path, name: str = "moved.mp4") -> Path:
    """The in-process result for `body_source`, written out for ffmpeg to read (tests only)."""
    relocation = plan_faststart(body_source, read_layout(body_source))
    target = tmp_path / name
    with relocation.body.open() as stream, target.open("wb") as out:
        shutil.copyfileobj(stream, out)
    return target


@pytest.fixture
def moov_at_end(clip_library: dict[str, Path], tmp_path: Path) -> Path:
    target = tmp_path / "source.mp4"
    shutil.copyfile(clip_library["moov_at_end"], target)
    return target


def copy_of(clip: Path, target: Path, ffmpeg: str) -> Path:
    shutil.copyfile(clip, target)
    return target


# How each source is made from the moov-at-end clip; True: built here box by box (so first
# proven sound: ffmpeg must read the clip's own packets from it).
SOURCES: dict[str, tuple[Callable[[Path, Path, str], Path], bool]] = {
    "moov at the end": (copy_of, False),
    "free, wide and uuid around moov": (
        lambda c, t, _: mp4_files.with_boxes_around_moov(c, t),
        True,
    ),
    "co64 already": (lambda c, t, _: mp4_files.with_co64(c, t), True),
    "two mdat boxes": (lambda c, t, _: mp4_files.with_two_mdats(c, t), True),
    "moov between two mdats": (
        lambda c, t, _: mp4_files.with_two_mdats(c, t, moov_between=True),
        True,
    ),
    "edit list with a start offset": (mp4_files.with_start_offset, False),
    "two audio tracks": (lambda _, t, ffmpeg: mp4_files.two_audio_tracks(t, ffmpeg), False),
}


@pytest.mark.parametrize("case", list(SOURCES))
def test_the_moved_file_has_the_source_packets_and_starts_with_its_index(
    case: str, ffmpeg: str, clip_library: dict[str, Path], tmp_path: Path
) -> None:
    clip = clip_library["moov_at_end"]
    build, by_hand = SOURCES[case]
    source = build(clip, tmp_path / "source.mp4", ffmpeg)
    before = sha256(source)
    source_packets = mp4_files.framemd5(ffmpeg, source)
    if by_hand:
        assert source_packets == mp4_files.framemd5(ffmpeg, clip)

    moved = written(source, tmp_path)

    assert mp4_files.framemd5(ffmpeg, moved) == source_packets
    original, layout = read_layout(source), read_layout(moved)
    assert not original.is_faststart and layout.is_faststart
    assert [b.type for b in layout.boxes][:2] == ["ftyp", "moov"]
    assert (layout.tracks, layout.duration_seconds) == (original.tracks, original.duration_seconds)
    assert layout.file_size == original.file_size  # the same boxes, only in another order
    assert sha256(source) == before


def test_two_audio_tracks_both_go_up(ffmpeg: str, tmp_path: Path) -> None:
    source = mp4_files.two_audio_tracks(tmp_path / "two.mp4", ffmpeg)
    layout = read_layout(written(source, tmp_path))
    assert [t.handler for t in layout.tracks] == ["vide", "soun", "soun"]


def test_offsets_past_4_gib_promote_every_table_to_co64(moov_at_end: Path, tmp_path: Path) -> None:
    source, shift = mp4_files.sparse_near_four_gib(moov_at_end, tmp_path / "long.mp4")
    assert source.stat().st_size > mp4_files.FOUR_GIB - 2048
    assert source.stat().st_blocks * 512 < 64 * 1024 * 1024, "the hole is not on disk"
    layout = read_layout(source)
    moov_box = next(b for b in layout.boxes if b.type == "moov")
    with source.open("rb") as f:
        f.seek(moov_box.offset)
        old_tables = chunk_offset_tables(parse_moov(f.read(moov_box.size)))
    assert {t.box_type for t in old_tables} == {"stco"} and max(
        max(t.offsets) for t in old_tables
    ) < mp4_files.FOUR_GIB

    relocation = plan_faststart(source, layout)

    assert relocation.promoted_to_co64
    body = relocation.body
    with body.open() as stream:
        moved = read_layout_of(stream, body.size, source)
    assert moved.is_faststart and moved.tracks == layout.tracks
    new_moov_box = moved.boxes[1]
    assert new_moov_box.type == "moov" and new_moov_box.size == relocation.moov_bytes
    with body.open(new_moov_box.offset, new_moov_box.size) as stream:
        new_tables = chunk_offset_tables(parse_moov(stream.read()))
    assert {t.box_type for t in new_tables} == {"co64"}
    assert max(max(t.offsets) for t in new_tables) > mp4_files.FOUR_GIB
    # Every chunk: the bytes at its new offset in the stream are those at its old one.
    with source.open("rb") as original:
        for old, new in zip(old_tables, new_tables, strict=True):
            assert len(old.offsets) == len(new.offsets)
            for before, after in zip(old.offsets, new.offsets, strict=True):
                original.seek(before)
                with body.open(after, 32) as moved_bytes:
                    assert moved_bytes.read() == original.read(32)
    # Only the moov is in memory: the rest is read from the source's ranges.
    assert body.file_bytes == layout.file_size - moov_box.size
    assert shift > 0


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def test_a_moov_at_end_clip_goes_up_from_the_source_without_a_temp_file(
    moov_at_end: Path, work_dir: Path, tmp_path: Path
) -> None:
    never_run = tmp_path / "no-ffmpeg-here"  # the in-process move needs no ffmpeg at all

    result = optimize_for_streaming(moov_at_end, work_dir, Preset.FASTSTART, str(never_run))

    assert (result.path, result.reason, result.temp_path) == (
        StreamingPath.MOVED_IN_PROCESS, None, None,
    )  # fmt: skip
    assert result.body.path == moov_at_end and not result.body.is_whole_file
    assert list(work_dir.iterdir()) == []


def refusal_for(source: Path, work_dir: Path, ffmpeg: str) -> str | None:
    # Re-encoding off: these are the remux's own reasons (hev1 is re-encoded otherwise).
    options = StreamingOptions(transcode_unplayable=False)
    result = optimize_for_streaming(source, work_dir, Preset.FASTSTART, ffmpeg, options=options)
    assert result.path is StreamingPath.FFMPEG_REMUX
    assert read_layout(result.body.path).is_faststart
    return result.reason


def test_quicktime_with_pcm_is_remuxed_by_ffmpeg_with_the_reason(
    ffmpeg: str, clip_library: dict[str, Path], work_dir: Path
) -> None:
    reason = refusal_for(clip_library["mov_pcm"], work_dir, ffmpeg)
    assert reason == "audio track 2 is 'sowt', which MP4 players do not play: it must become AAC"


def test_a_fragmented_source_is_remuxed_by_ffmpeg(
    ffmpeg: str, clip_library: dict[str, Path], work_dir: Path
) -> None:
    assert refusal_for(clip_library["fragmented"], work_dir, ffmpeg) == "it is fragmented"


def test_hev1_is_remuxed_by_ffmpeg(ffmpeg: str, tmp_path: Path, work_dir: Path) -> None:
    try:
        source = samples.make_hevc_mp4(tmp_path / "hevc.mp4", ffmpeg=ffmpeg, seconds=1.0)
    except samples.SampleGenerationFailed as exc:
        pytest.skip(f"this ffmpeg cannot encode HEVC: {exc}")
    assert "'hev1'" in str(refusal_for(source, work_dir, ffmpeg))


def with_top_level(clip: Path, target: Path, extra: bytes) -> Path:
    target.write_bytes(clip.read_bytes() + extra)
    return target


def test_an_unknown_top_level_box_is_left_to_ffmpeg(
    ffmpeg: str, moov_at_end: Path, tmp_path: Path, work_dir: Path
) -> None:
    source = with_top_level(moov_at_end, tmp_path / "meta.mp4", mp4_files.box("meta", b"\0" * 12))
    reason = refusal_for(source, work_dir, ffmpeg)
    assert (
        reason
        == "it has a top-level 'meta' box, which the in-process move cannot prove safe to move"
    )


def moov_with(clip: Path, target: Path, child: bytes) -> Path:
    """The clip with `child` appended inside its moov (moov is the last box)."""
    boxes = mp4_files.top_level(clip)
    kind, moov = boxes[-1]
    assert kind == "moov"
    grown = mp4_files.box("moov", moov[8:] + child)
    target.write_bytes(b"".join(data for _, data in boxes[:-1]) + grown)
    return target


@pytest.mark.parametrize(
    ("child", "reason"),
    [
        (mp4_files.box("cmov", b"\0" * 8), "its moov holds moov/cmov"),
        (mp4_files.box("udta", mp4_files.box("meta", b"\0" * 4 + mp4_files.box("iloc", b"\0" * 8))),
         "a metadata box in its moov locates items by file offset"),
        (b"\0\0\0\x30junk", "its moov cannot be read box by box"),
    ],
    ids=["cmov", "iloc", "cut-box"],
)  # fmt: skip
def test_what_the_move_cannot_read_or_rewrite_is_left_to_ffmpeg(
    moov_at_end: Path, tmp_path: Path, child: bytes, reason: str
) -> None:
    source = moov_with(moov_at_end, tmp_path / "odd.mp4", child)
    with pytest.raises(FaststartRefused, match=reason.replace("(", r"\(")):
        plan_faststart(source, read_layout(source))


def test_a_chunk_offset_outside_the_media_is_refused(moov_at_end: Path, tmp_path: Path) -> None:
    boxes = mp4_files.top_level(moov_at_end)
    moov = mp4_files.moov_of(boxes)
    # Every chunk pointing far past the end, where no mdat is.
    broken = mp4_files.moved(moov, 10**6)
    source = tmp_path / "broken.mp4"
    source.write_bytes(b"".join(broken if kind == "moov" else data for kind, data in boxes))
    with pytest.raises(FaststartRefused, match=r"chunk 1 \(bytes \d+-\d+\) does not lie inside"):
        plan_faststart(source, read_layout(source))


def test_media_in_another_file_is_refused(moov_at_end: Path, tmp_path: Path) -> None:
    data = moov_at_end.read_bytes()
    # The clip's data references say "this file" (url  with flag 1); clear the flag.
    at = data.index(b"url \x00\x00\x00\x01")
    source = tmp_path / "external.mp4"
    source.write_bytes(data[: at + 7] + b"\x00" + data[at + 8 :])
    with pytest.raises(FaststartRefused, match="refers to media in another file"):
        plan_faststart(source, read_layout(source))


def test_a_moov_larger_than_the_memory_limit_is_left_to_ffmpeg(
    moov_at_end: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faststart, "MAX_MOOV_BYTES", 1024)
    with pytest.raises(FaststartRefused, match="MiB the in-process move keeps in memory"):
        plan_faststart(moov_at_end, read_layout(moov_at_end))


def test_turned_off_every_file_goes_to_ffmpeg(
    ffmpeg: str, moov_at_end: Path, work_dir: Path
) -> None:
    result = optimize_for_streaming(
        moov_at_end, work_dir, Preset.FASTSTART, ffmpeg, options=StreamingOptions(in_process=False)
    )
    assert result.path is StreamingPath.FFMPEG_REMUX and result.temp_path
    assert result.reason == "the in-process move is turned off (UPLOAD_JOBS_FASTSTART_IN_PROCESS)"


def test_an_index_that_would_send_other_bytes_for_a_chunk_is_refused(
    moov_at_end: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug in moving the offsets: a track's last chunk pointed one byte after its own.
    real = faststart._moved_offsets

    def last_one_byte_off(offsets: array, mdats: list) -> array:
        moved = real(offsets, mdats)
        moved[-1] += 1
        return moved

    monkeypatch.setattr(faststart, "_moved_offsets", last_one_byte_off)
    with pytest.raises(FaststartRefused, match="would not be sent from the source's bytes"):
        plan_faststart(moov_at_end, read_layout(moov_at_end))
