"""HLS playlists: reading the media playlists ffmpeg writes (their init segment, segments and
durations) and writing the master playlist from what was measured, the same with every ffmpeg
(5.1 leaves `CODECS` out of a copied stream's variant, 9 writes it; the names of init segments
differ too)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import PurePosixPath

MASTER_PLAYLIST = "master.m3u8"


class PlaylistInvalid(ValueError):
    """A playlist is not a complete VOD media playlist of fMP4 segments."""


@dataclass(frozen=True)
class Segment:
    """One media segment: its file, relative to the playlist, and its length in seconds."""

    uri: str
    seconds: float


@dataclass(frozen=True)
class MediaPlaylist:
    """A VOD media playlist: its init segment (`EXT-X-MAP`) and its segments, in order."""

    init_uri: str
    segments: tuple[Segment, ...]
    target_seconds: int

    @property
    def duration_seconds(self) -> float:
        """The playlist's length: its segments' durations added up."""
        return sum(segment.seconds for segment in self.segments)


@dataclass(frozen=True)
class Variant:
    """One entry of the master playlist."""

    uri: str
    peak_bandwidth: int
    average_bandwidth: int
    width: int
    height: int
    codecs: tuple[str, ...]


def parse_media_playlist(text: str) -> MediaPlaylist:
    """The playlist `text`; PlaylistInvalid unless it is a finished VOD playlist of fMP4
    segments whose files lie beside it (no URLs, no `..`)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise PlaylistInvalid("it does not start with #EXTM3U")
    if "#EXT-X-ENDLIST" not in lines:
        raise PlaylistInvalid("it has no #EXT-X-ENDLIST (unfinished)")
    init_uri, target, segments, seconds = None, 0, [], None
    for line in lines[1:]:
        if line.startswith("#EXT-X-MAP:"):
            init_uri = _attribute(line, "URI")
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            target = int(_seconds(line.partition(":")[2], line))
        elif line.startswith("#EXTINF:"):
            seconds = _seconds(line.partition(":")[2].partition(",")[0], line)
        elif not line.startswith("#"):
            if seconds is None:
                raise PlaylistInvalid(f"segment {line!r} has no #EXTINF")
            segments.append(Segment(_local(line), seconds))
            seconds = None
    if init_uri is None:
        raise PlaylistInvalid("it has no #EXT-X-MAP (not fMP4)")
    if not segments:
        raise PlaylistInvalid("it has no segments")
    return MediaPlaylist(_local(init_uri), tuple(segments), target)


def master_playlist(variants: list[Variant]) -> str:
    """The master playlist listing `variants`, lowest bandwidth first: a player that starts with
    the first it can decode (Safari, hls.js) shows a frame soonest on any link, then climbs as it
    measures the link, as Chromium does whatever the order (it starts on the lowest)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for variant in sorted(variants, key=lambda v: v.peak_bandwidth):
        attributes = [
            f"BANDWIDTH={variant.peak_bandwidth}",
            f"AVERAGE-BANDWIDTH={variant.average_bandwidth}",
            f"RESOLUTION={variant.width}x{variant.height}",
            f'CODECS="{",".join(variant.codecs)}"',
        ]
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attributes), variant.uri]
    return "\n".join(lines) + "\n"


def parse_master_playlist(text: str) -> list[tuple[dict[str, str], str]]:
    """The variants of a master playlist: each one's attributes and URI."""
    variants, pending = [], None
    for line in (line.strip() for line in text.splitlines()):
        if line.startswith("#EXT-X-STREAM-INF:"):
            pending = _attributes(line.partition(":")[2])
        elif line and not line.startswith("#") and pending is not None:
            variants.append((pending, line))
            pending = None
    return variants


def _seconds(text: str, line: str) -> float:
    """A duration: a finite number of seconds, not negative (`inf`, `nan`, `-1` refused)."""
    try:
        value = float(text)
    except ValueError:
        raise PlaylistInvalid(f"{line!r} has no number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise PlaylistInvalid(f"{line!r} is not a duration")
    return value


def _local(uri: str) -> str:
    path = PurePosixPath(uri)
    if "://" in uri or path.is_absolute() or ".." in path.parts:
        raise PlaylistInvalid(f"{uri!r} is not a file beside the playlist")
    return uri


def _attribute(line: str, name: str) -> str:
    value = _attributes(line.partition(":")[2]).get(name)
    if value is None:
        raise PlaylistInvalid(f"{line!r} has no {name}")
    return value


def _attributes(text: str) -> dict[str, str]:
    """An attribute list (`A=1,B="x,y"`), quoted values may hold commas."""
    found: dict[str, str] = {}
    name, value, quoted, in_value = "", "", False, False
    for char in text + ",":
        if in_value:
            if char == '"':
                quoted = not quoted
            elif char == "," and not quoted:
                found[name.strip()] = value
                name, value, in_value = "", "", False
            else:
                value += char
        elif char == "=":
            in_value = True
        else:
            name += char
    return found
