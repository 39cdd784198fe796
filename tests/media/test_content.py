"""What an optimized file would lose of its source, in words: the comparison that keeps a loss
from going up as "optimized"."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import mp4_files
from upload_jobs.media.content import (
    MediaContent,
    WouldLoseContent,
    check_nothing_lost,
    content_lost,
    parse_ffmetadata,
)
from upload_jobs.media.mp4 import Track, read_layout
from upload_jobs.media.remux import OutputInvalid, remux_with_ffmpeg
from upload_jobs.settings import Preset

ROTATED = (0, 65536, 0, -65536, 0, 0, 7864320, 0, 1 << 30)
VIDEO = Track(1, "vide", "avc1", 2.0, "und", ROTATED)
AUDIO = Track(2, "soun", "mp4a", 2.0, "eng")
FRENCH_PCM = Track(3, "soun", "sowt", 2.0, "fra")
SUBTITLES = Track(4, "sbtl", "tx3g", 2.0, "eng")
TIMECODE = Track(5, "tmcd", "tmcd", 2.0)
TELEMETRY = Track(6, "meta", "gpmd", 2.0)
TAGS = {"title": "Take 1", "com.apple.quicktime.make": "Apple", "encoder": "Lavf59"}
CHAPTERS = ("0.000-1.000 title=one", "1.000-2.000 title=two")


def content(*tracks: Track, tags: dict[str, str] = TAGS, chapters: tuple[str, ...] = CHAPTERS):
    return MediaContent(tracks, dict(tags), chapters)


SOURCE = content(VIDEO, AUDIO, FRENCH_PCM, SUBTITLES, TIMECODE)
UNROTATED = Track(1, "vide", "avc1", 2.0, "und", None)
LOSSES = ["audio", "subtitles", "timecode", "language", "rotation", "codec", "length", "tag",
          "chapters"]  # fmt: skip


def test_the_same_content_after_the_conversions_mp4_needs_loses_nothing() -> None:
    as_aac = Track(3, "soun", "mp4a", 2.01, "fra")
    moved_ids = [Track(9, t.handler, t.fourcc, t.duration_seconds, t.language, t.matrix)
                 for t in (VIDEO, AUDIO)]  # fmt: skip
    output = content(*moved_ids, as_aac, Track(7, "text", "tx3g", 2.0), TIMECODE,
                     tags={**TAGS, "encoder": "Lavf63", "major_brand": "isom"})  # fmt: skip
    assert content_lost(SOURCE, output) == []


@pytest.mark.parametrize(
    ("output", "lost"),
    [
        (content(VIDEO, AUDIO, SUBTITLES, TIMECODE), ["audio track 3"]),
        (content(VIDEO, AUDIO, FRENCH_PCM, TIMECODE), ["text track 4"]),
        (content(VIDEO, AUDIO, FRENCH_PCM, SUBTITLES), ["timecode track 5"]),
        (
            content(VIDEO, AUDIO, Track(3, "soun", "mp4a", 2.0, "eng"), SUBTITLES, TIMECODE),
            ["audio track 3's language 'fra'"],
        ),
        (
            content(UNROTATED, AUDIO, FRENCH_PCM, SUBTITLES, TIMECODE),
            ["video track 1's rotation (its display matrix)"],
        ),
        (
            content(VIDEO, Track(2, "soun", "ac-3", 2.0, "eng"), FRENCH_PCM, SUBTITLES, TIMECODE),
            ["audio track 2's codec 'mp4a' (became 'ac-3')"],
        ),
        (
            content(VIDEO, Track(2, "soun", "mp4a", 1.0, "eng"), FRENCH_PCM, SUBTITLES, TIMECODE),
            ["audio track 2's length (2.00 s)"],
        ),
        (
            content(VIDEO, AUDIO, FRENCH_PCM, SUBTITLES, TIMECODE, tags={"title": "Take 1"}),
            ["tag com.apple.quicktime.make"],
        ),
        (
            content(VIDEO, AUDIO, FRENCH_PCM, SUBTITLES, TIMECODE, chapters=CHAPTERS[:1]),
            ["chapters (2 in the source, 1 kept)"],
        ),
    ],
    ids=LOSSES,
)
def test_each_loss_is_named(output: MediaContent, lost: list[str]) -> None:
    assert content_lost(SOURCE, output) == lost


def test_a_track_the_remux_leaves_out_is_named_with_its_kind() -> None:
    source = content(VIDEO, AUDIO, TELEMETRY)
    assert content_lost(source, content(VIDEO, AUDIO)) == ["track 6 ('meta' gpmd)"]


def test_ffmetadata_tags_and_chapters_whatever_the_chapter_time_base() -> None:
    listing = (
        ";FFMETADATA1\ntitle=Two\\\nlines\nmajor_brand=qt  \n"
        "[CHAPTER]\nTIMEBASE=1/441000000\nSTART=0\nEND=441000000\ntitle=one\n"
        "[STREAM]\nlanguage=eng\n"
    )
    tags, chapters = parse_ffmetadata(listing)
    assert tags == {"title": "Two\nlines", "major_brand": "qt  "}
    assert chapters == ("0.000-1.000 title=one",)
    same = parse_ffmetadata(";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1000\n"
                            "title=one\n")  # fmt: skip
    assert same[1] == chapters


def test_a_remux_that_drops_a_track_is_refused_and_leaves_no_file(
    ffmpeg: str, tmp_path: Path
) -> None:
    source = mp4_files.two_audio_tracks(tmp_path / "two.mp4", ffmpeg)
    drops = tmp_path / "drops-second-audio"
    # An ffmpeg that keeps only the first audio stream, as the remux did before.
    drops.write_text(f'#!/bin/bash\nargs=("$@"); last="${{args[-1]}}"; unset "args[-1]"\n'
                     f'exec "{ffmpeg}" "${{args[@]}}" -map -0:a:1 "$last"\n')  # fmt: skip
    drops.chmod(0o755)
    work = tmp_path / "work"
    with pytest.raises(OutputInvalid, match="1 video and 1 audio tracks, the source 1 and 2"):
        remux_with_ffmpeg(source, read_layout(source), work, Preset.FASTSTART, str(drops))
    assert list(work.iterdir()) == []


def test_check_nothing_lost_passes_a_faithful_copy(ffmpeg: str, clip_library) -> None:
    layout = read_layout(clip_library["moov_at_end"])
    check_nothing_lost(ffmpeg, layout, layout)
    with pytest.raises(WouldLoseContent, match="would lose what the source has: audio track 2"):
        lacking = read_layout(clip_library["moov_at_end"])
        object.__setattr__(lacking, "tracks", lacking.tracks[:1])
        check_nothing_lost(ffmpeg, layout, lacking)
