"""What a video holds that its upload must keep (its tracks, their codecs, languages and
durations, its container's tags, its chapters) and what an optimized file would lose of its
source. A loss is never uploaded as "optimized": the original goes up, with what was at stake.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from upload_jobs.errors import OptimizationFailed
from upload_jobs.media.codecs import MP4_SAFE_AUDIO_FOURCCS
from upload_jobs.media.mp4 import HANDLER_AUDIO, HANDLER_VIDEO, Mp4Layout, Track

TEXT_HANDLERS = frozenset({"text", "sbtl", "subt"})
HANDLER_TIMECODE = "tmcd"
# Tags ffmpeg writes from the container itself, which a remux rightly changes.
CONTAINER_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder"})
DURATION_TOLERANCE_SECONDS = 0.5
DURATION_TOLERANCE_RATIO = 0.02
_PROBE_TIMEOUT_SECONDS = 120


class WouldLoseContent(OptimizationFailed):
    """The optimized file lacks something its source has (a track, a tag, chapters): the
    original goes up instead, and the reason names what would have been lost."""

    fallback_kind = "would_lose_content"


class ContentUnreadable(OptimizationFailed):
    """ffmpeg could not read back a file's tags and chapters, so nothing proves them kept."""

    fallback_kind = "output_invalid"


@dataclass(frozen=True)
class MediaContent:
    """A file's tracks (from its boxes), container tags and chapters (as ffmpeg reads them)."""

    tracks: tuple[Track, ...]
    tags: dict[str, str]
    chapters: tuple[str, ...]


def read_content(ffmpeg: str, layout: Mp4Layout) -> MediaContent:
    """The content of the file `layout` describes; `ContentUnreadable` if ffmpeg cannot say."""
    command = [ffmpeg, "-nostdin", "-v", "error", "-i", f"file:{layout.path.absolute()}",
               "-f", "ffmetadata", "-"]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, timeout=_PROBE_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as exc:
        message = f"ffmpeg could not read the tags of {layout.path.name}: {exc}"
        raise ContentUnreadable(message) from exc
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise ContentUnreadable(f"ffmpeg could not read the tags of {layout.path.name}: {said[0]}")
    tags, chapters = parse_ffmetadata(done.stdout.decode("utf-8", "replace"))
    return MediaContent(tuple(layout.tracks), tags, chapters)


def parse_ffmetadata(text: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """The global tags and the chapters (each as its lines) of ffmpeg's `ffmetadata` output."""
    tags: dict[str, str] = {}
    chapters: list[list[str]] = []
    section = "global"
    for line in _logical_lines(text):
        if line.startswith(";") or not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            if section == "CHAPTER":
                chapters.append([])
            continue
        if section == "global":
            key, _, value = line.partition("=")
            tags[key] = value
        elif section == "CHAPTER":
            chapters[-1].append(line)
    return tags, tuple(_chapter(lines) for lines in chapters)


def _chapter(lines: list[str]) -> str:
    """A chapter as `0.000-1.000 title=one`: its times in milliseconds whatever its time base
    (ffmpeg writes the chapter track's own), then its tags."""
    fields = dict(line.partition("=")[::2] for line in lines)
    try:
        base = Fraction(fields.pop("TIMEBASE", "1/1000"))
        start, end = (Fraction(int(fields.pop(key, "0"))) * base for key in ("START", "END"))
    except (ValueError, ZeroDivisionError):
        return "\n".join(lines)
    tags = " ".join(f"{key}={value}" for key, value in sorted(fields.items()))
    return f"{float(start):.3f}-{float(end):.3f} {tags}"


def _logical_lines(text: str) -> Iterable[str]:
    """Lines, a value's escaped newline (a trailing backslash) joined with the next."""
    pending = ""
    for line in text.splitlines():
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending += line[:-1] + "\n"
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def content_lost(source: MediaContent, output: MediaContent, transcoded: bool = False) -> list[str]:
    """What of the source the output does not hold, one phrase each; empty when nothing
    (`transcoded`: video may have become H.264 with its rotation applied, audio AAC)."""
    lost = _tracks_lost(source.tracks, output.tracks, transcoded)
    for key, value in source.tags.items():
        if key not in CONTAINER_TAGS and output.tags.get(key) != value:
            lost.append(f"tag {key}")
    if source.chapters != output.chapters:
        lost.append(f"chapters ({len(source.chapters)} in the source, {len(output.chapters)} kept)")
    return lost


def _tracks_lost(
    source: tuple[Track, ...], output: tuple[Track, ...], transcoded: bool = False
) -> list[str]:
    lost: list[str] = []
    for handler, kind in ((HANDLER_VIDEO, "video"), (HANDLER_AUDIO, "audio")):
        before = [t for t in source if t.handler == handler]
        after = [t for t in output if t.handler == handler]
        lost += [f"{kind} track {t.track_id}" for t in before[len(after) :]]
        for old, new in zip(before, after, strict=False):
            lost += _track_changes(kind, old, new, transcoded)
    for handlers, kind in ((TEXT_HANDLERS, "text"), ({HANDLER_TIMECODE}, "timecode")):
        before = [t for t in source if t.handler in handlers]
        kept = sum(1 for t in output if t.handler in handlers)
        lost += [f"{kind} track {t.track_id}" for t in before[kept:]]
    known = {HANDLER_VIDEO, HANDLER_AUDIO, HANDLER_TIMECODE, *TEXT_HANDLERS}
    others = [t for t in source if t.handler not in known]
    for handler in sorted({t.handler for t in others}):
        kept = sum(1 for t in output if t.handler == handler)
        lost += [
            f"track {t.track_id} ({t.handler!r} {t.fourcc or 'data'})"
            for t in [t for t in others if t.handler == handler][kept:]
        ]
    return lost


def _track_changes(kind: str, old: Track, new: Track, transcoded: bool = False) -> list[str]:
    """How `new` differs from `old` beyond what MP4 (or, `transcoded`, browsers) need changed."""
    changes = []
    converted = (old.fourcc, new.fourcc) == ("hev1", "hvc1") or (
        kind == "audio" and old.fourcc not in MP4_SAFE_AUDIO_FOURCCS and new.fourcc == "mp4a"
    )
    converted |= transcoded and new.fourcc == ("avc1" if kind == "video" else "mp4a")
    if old.fourcc != new.fourcc and not converted:
        became = f"became {new.fourcc!r}"
        changes.append(f"{kind} track {old.track_id}'s codec {old.fourcc!r} ({became})")
    # A re-encode turns the picture itself: the matrix goes, the size as shown stays.
    rotation_applied = transcoded and old.display_size == new.display_size
    if kind == "video" and old.matrix and old.matrix != new.matrix and not rotation_applied:
        changes.append(f"video track {old.track_id}'s rotation (its display matrix)")
    if old.language and new.language and old.language != new.language:
        changes.append(f"{kind} track {old.track_id}'s language {old.language!r}")
    if old.duration_seconds and not lasts_as_long(old.duration_seconds, new.duration_seconds):
        changes.append(f"{kind} track {old.track_id}'s length ({old.duration_seconds:.2f} s)")
    return changes


def lasts_as_long(expected: float, actual: float | None) -> bool:
    """Whether `actual` seconds is `expected` within what a remux may change (a frame or so)."""
    tolerance = max(DURATION_TOLERANCE_SECONDS, DURATION_TOLERANCE_RATIO * expected)
    return actual is not None and abs(actual - expected) <= tolerance


def check_nothing_lost(
    ffmpeg: str, source: Mp4Layout, output: Mp4Layout, transcoded: bool = False
) -> None:
    """`WouldLoseContent` naming what `output` lacks of `source`; nothing when it has it all."""
    lost = content_lost(read_content(ffmpeg, source), read_content(ffmpeg, output), transcoded)
    if lost:
        raise WouldLoseContent(
            f"the optimized file would lose what the source has: {', '.join(lost)}; "
            "the original goes up instead"
        )
