"""The encoder options every re-encode uses: H.264 (x264) video and AAC audio that every browser
plays, keyframes on a fixed grid so HLS renditions switch cleanly, and the command that turns a
file browsers cannot play into a faststart MP4 they can."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from upload_jobs.media.codecs import EVERY_BROWSER_AUDIO_FOURCCS, EVERY_BROWSER_VIDEO_FOURCCS
from upload_jobs.media.mp4 import Mp4Layout

# veryfast: ~4x the speed of x264's default at ~+10 % bits for the same quality; CRF 21 keeps
# a faststart transcode visually transparent for recordings (PSNR well above 40 dB measured).
X264_PRESET = "veryfast"
TRANSCODE_CRF = 21
AUDIO_KBPS = 128


@dataclass(frozen=True)
class EncoderSettings:
    """How hard each x264 may work: its thread count (0: x264 decides), and the slot every
    re-encode holds while it runs (a bound on how many run at once; none by default)."""

    threads: int = 0
    slot: Callable[[], AbstractContextManager[object]] = field(default=nullcontext)

    def thread_options(self) -> list[str]:
        """`-threads N` when a count is set."""
        return ["-threads", str(self.threads)] if self.threads else []


DEFAULT_ENCODER = EncoderSettings()


def h264_options(stream: str, *, crf: int | None = None, kbps: int | None = None) -> list[str]:
    """x264 for output video stream `stream` (`v:0`): constant quality (`crf`) or a bitrate
    (`kbps`, capped at 1.1x with a 2 s buffer, as HLS players budget by it); High profile,
    4:2:0 (browsers decode no other)."""
    options = [f"-c:{stream}", "libx264", f"-preset:{stream}", X264_PRESET,
               f"-profile:{stream}", "high", f"-pix_fmt:{stream}", "yuv420p"]  # fmt: skip
    if kbps is not None:
        options += [f"-b:{stream}", f"{kbps}k", f"-maxrate:{stream}", f"{round(kbps * 1.1)}k",
                    f"-bufsize:{stream}", f"{kbps * 2}k"]  # fmt: skip
    else:
        options += [f"-crf:{stream}", str(crf if crf is not None else TRANSCODE_CRF)]
    return options


def keyframe_grid(seconds: float) -> list[str]:
    """A keyframe every `seconds` and no others (no scene-cut keyframes): every rendition is cut
    at the same instants, so a player switches between them at any segment boundary."""
    return ["-force_key_frames", f"expr:gte(t,n_forced*{seconds:g})", "-sc_threshold", "0"]


def aac_options(stream: str, kbps: int = AUDIO_KBPS) -> list[str]:
    """AAC-LC stereo for output audio stream `stream` (`a:0`)."""
    return [f"-c:{stream}", "aac", f"-b:{stream}", f"{kbps}k", f"-ac:{stream}", "2"]


def playable_conversions(layout: Mp4Layout) -> list[str]:
    """The options that re-encode only the tracks browsers cannot play (per-stream, after a
    `-c copy`): such video to H.264, such audio to AAC."""
    options: list[str] = []
    for index, track in enumerate(layout.video_tracks):
        if track.fourcc not in EVERY_BROWSER_VIDEO_FOURCCS:
            options += h264_options(f"v:{index}")
    for index, track in enumerate(layout.audio_tracks):
        if track.fourcc not in EVERY_BROWSER_AUDIO_FOURCCS:
            options += aac_options(f"a:{index}")
    return options


def ffmpeg_input(ffmpeg: str, source: Path, *global_options: str) -> list[str]:
    """The start of every command: quiet, `global_options`, progress on stdout, the source read
    as a file (so a name like `clip:1.mov` is no protocol)."""
    return [ffmpeg, "-nostdin", "-hide_banner", *global_options, "-progress", "pipe:1",
            "-nostats", "-i", f"file:{source.absolute()}"]  # fmt: skip
