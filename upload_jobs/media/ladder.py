"""The renditions of an adaptive (`abr`) ladder, chosen from the source: never larger than its
picture, never more bits per second than it has (README "Presets")."""

from __future__ import annotations

from dataclasses import dataclass

from upload_jobs.errors import OptimizationFailed
from upload_jobs.media.encoding import AUDIO_KBPS

# (short side in pixels, video kbit/s): the rungs of common streaming ladders at 30 fps, H.264.
STANDARD_RUNGS = ((1080, 5000), (720, 2800), (480, 1400), (360, 800))
# Below this many kbit/s a rung would be mostly blocks: the ladder stops there.
MIN_VIDEO_KBPS = 200


class NoLadder(OptimizationFailed):
    """The source has no picture a ladder can be made of (no video, no size)."""

    fallback_kind = "no_ladder"


@dataclass(frozen=True)
class Rendition:
    """One rung: its name (`720p`), picture size, and target bitrates."""

    name: str
    width: int
    height: int
    video_kbps: int
    audio_kbps: int

    @property
    def bandwidth(self) -> int:
        """The rung's nominal bits per second, video and audio."""
        return (self.video_kbps + self.audio_kbps) * 1000


def choose_ladder(width: int, height: int, source_kbps: float | None) -> list[Rendition]:
    """The rungs for a `width`x`height` source of `source_kbps` (video and audio): each standard
    rung no taller than the source (on its short side, so portrait video counts too), the top one
    at the source's own size when it falls between rungs, every bitrate capped by the source's.

    1080p gives 1080/720/480/360, 480p gives 480/360, 300p gives one rung at 300p.
    """
    if width <= 0 or height <= 0:
        raise NoLadder(f"the video has no picture size ({width}x{height}) to scale from")
    short = min(width, height)
    rungs = [(side, kbps) for side, kbps in STANDARD_RUNGS if side <= short]
    if not rungs or (rungs[0][0] < short < STANDARD_RUNGS[0][0]):
        # Between rungs (540p) or below all (300p): the source's own size heads the ladder.
        rungs.insert(0, (short, _kbps_for(short)))
    # A source with fewer bits than the top rung wants scales every rung down alike.
    factor = 1.0
    if source_kbps is not None:
        factor = min(1.0, (source_kbps - AUDIO_KBPS) / rungs[0][1])
    ladder: list[Rendition] = []
    for side, kbps in rungs:
        video_kbps = round(kbps * factor)
        if video_kbps < MIN_VIDEO_KBPS and ladder:
            break
        w, h = _scaled(width, height, side)
        ladder.append(Rendition(f"{side}p", w, h, max(video_kbps, MIN_VIDEO_KBPS), AUDIO_KBPS))
    return ladder


def _kbps_for(side: int) -> int:
    """A bitrate for a size between rungs, by pixel count against the nearest rung above."""
    above = next(((s, k) for s, k in reversed(STANDARD_RUNGS) if s >= side), STANDARD_RUNGS[0])
    return max(MIN_VIDEO_KBPS, round(above[1] * (side / above[0]) ** 2))


def _scaled(width: int, height: int, short_side: int) -> tuple[int, int]:
    """The picture scaled so its short side is `short_side`, both sides even (H.264's 4:2:0)."""
    scale = short_side / min(width, height)
    return _even(width * scale), _even(height * scale)


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)
