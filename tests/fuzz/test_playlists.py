"""The media playlist parser fuzzed: ffmpeg writes the playlists, from input nobody vouches for,
so whatever text it holds gets a parsed playlist or `PlaylistInvalid`, nothing else (hypothesis,
bounded and derandomized as the other targets)."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from upload_jobs.media.playlists import PlaylistInvalid, parse_media_playlist

EXAMPLES = 1000
PLAYLIST = [
    "#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0",
    "#EXT-X-PLAYLIST-TYPE:VOD", '#EXT-X-MAP:URI="init.mp4"', "#EXTINF:2.000000,",
    "seg00000.m4s", "#EXTINF:1.040000,", "seg00001.m4s", "#EXT-X-ENDLIST",
]  # fmt: skip
# What a line may become: a number where one was, an odd value, nothing, or any text.
ODD_VALUES = ["inf", "-inf", "nan", "-1", "1e400", "", "0x10", "2,3", '"', "..", "/etc/passwd",
              "http://x/y", "\x00", "URI", 'URI="', "#EXTINF:", "#EXT-X-MAP:"]  # fmt: skip

line_edit = st.tuples(
    st.integers(0, len(PLAYLIST) - 1),
    st.one_of(st.sampled_from(ODD_VALUES), st.text(max_size=20)),
    st.sampled_from(["replace", "value", "insert", "delete"]),
)


def edited(edits: list[tuple[int, str, str]]) -> str:
    lines = list(PLAYLIST)
    for index, text, how in edits:
        index %= max(1, len(lines))
        if how == "replace" and lines:
            lines[index] = text
        elif how == "value" and lines:
            lines[index] = lines[index].partition(":")[0] + ":" + text
        elif how == "insert":
            lines.insert(index, text)
        elif lines:
            del lines[index]
    return "\n".join(lines)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)
@given(edits=st.lists(line_edit, min_size=1, max_size=4))
def test_an_edited_playlist_is_parsed_or_refused(edits: list[tuple[int, str, str]]) -> None:
    try:
        playlist = parse_media_playlist(edited(edits))
    except PlaylistInvalid:
        return
    assert playlist.segments and playlist.duration_seconds >= 0
    assert all(s.seconds >= 0 for s in playlist.segments)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)
@given(text=st.text(max_size=300))
def test_any_text_is_parsed_or_refused(text: str) -> None:
    with contextlib.suppress(PlaylistInvalid):
        parse_media_playlist(text)


def test_durations_that_are_not_numbers_are_refused() -> None:
    for value in ("inf", "nan", "-1", "x"):
        text = "\n".join(PLAYLIST).replace("#EXTINF:2.000000,", f"#EXTINF:{value},")
        try:
            parse_media_playlist(text)
        except PlaylistInvalid:
            continue
        raise AssertionError(f"EXTINF:{value} was accepted")
    target = "\n".join(PLAYLIST).replace("TARGETDURATION:2", "TARGETDURATION:inf")
    try:
        parse_media_playlist(target)
    except PlaylistInvalid:
        return
    raise AssertionError("TARGETDURATION:inf was accepted")
