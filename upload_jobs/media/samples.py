"""Small synthetic clips (lavfi test pattern + sine tone) for tests and the demo.

Every maker overwrites `path` (the caller picked it on purpose) and returns it. Clips use a
short GOP so that even a 2-second clip has several keyframes, which fragmenting needs.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# Keep each clip to a fraction of a second of encoding on a small CI runner.
DEFAULT_SIZE = "320x240"
DEFAULT_RATE = 25
KEYFRAME_INTERVAL_FRAMES = 10


class SampleGenerationFailed(RuntimeError):
    """ffmpeg could not produce a sample clip (missing encoder, unwritable path, ...)."""


def make_moov_at_end_mp4(
    path: Path, *, ffmpeg: str, seconds: float = 2.0, size: str = DEFAULT_SIZE
) -> Path:
    """H.264 + AAC MP4 in ffmpeg's default layout: `ftyp free mdat moov` (moov at the end)."""
    _encode(path, ffmpeg=ffmpeg, seconds=seconds, size=size, container=["-f", "mp4"])
    return path


def make_faststart_mp4(
    path: Path, *, ffmpeg: str, seconds: float = 2.0, size: str = DEFAULT_SIZE
) -> Path:
    """H.264 + AAC MP4 with the moov box before mdat, ready for progressive playback."""
    container = ["-movflags", "+faststart", "-f", "mp4"]
    _encode(path, ffmpeg=ffmpeg, seconds=seconds, size=size, container=container)
    return path


def make_fragmented_mp4(
    path: Path, *, ffmpeg: str, seconds: float = 2.0, size: str = DEFAULT_SIZE
) -> Path:
    """H.264 + AAC fragmented MP4 (empty moov, one moof+mdat pair per keyframe)."""
    flags = "+frag_keyframe+empty_moov+delay_moov+default_base_moof"
    _encode(path, ffmpeg=ffmpeg, seconds=seconds, size=size, container=["-movflags", flags])
    return path


def make_mov_with_pcm_audio(
    path: Path, *, ffmpeg: str, seconds: float = 2.0, size: str = DEFAULT_SIZE
) -> Path:
    """QuickTime MOV (`qt  ` brand) with H.264 video and 16-bit PCM audio (`sowt`)."""
    _encode(
        path,
        ffmpeg=ffmpeg,
        seconds=seconds,
        size=size,
        audio=["-c:a", "pcm_s16le"],
        container=["-f", "mov"],
    )
    return path


def make_hevc_mp4(
    path: Path, *, ffmpeg: str, seconds: float = 2.0, size: str = DEFAULT_SIZE
) -> Path:
    """HEVC + AAC MP4, moov at the end; ffmpeg tags it `hev1`, which Safari will not play."""
    video = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"]
    _encode(path, ffmpeg=ffmpeg, seconds=seconds, size=size, video=video, container=["-f", "mp4"])
    return path


def make_mpeg4_part2_mp4(
    path: Path, *, ffmpeg: str, seconds: float = 1.0, size: str = "160x120"
) -> Path:
    """MPEG-4 Part 2 video (`mp4v`) with AAC: a codec browsers do not decode."""
    video = ["-c:v", "mpeg4"]
    _encode(path, ffmpeg=ffmpeg, seconds=seconds, size=size, video=video, container=["-f", "mp4"])
    return path


def make_truncated_mp4(
    path: Path,
    *,
    ffmpeg: str,
    seconds: float = 2.0,
    size: str = DEFAULT_SIZE,
    keep_fraction: float = 0.5,
) -> Path:
    """A faststart MP4 cut to `keep_fraction` of its bytes, like an interrupted copy."""
    if not 0 < keep_fraction < 1:
        raise ValueError(f"keep_fraction must be between 0 and 1, got {keep_fraction}")
    make_faststart_mp4(path, ffmpeg=ffmpeg, seconds=seconds, size=size)
    os.truncate(path, int(path.stat().st_size * keep_fraction))
    return path


def make_empty_file(path: Path) -> Path:
    """A zero-byte file, as left behind by a recorder that crashed before writing."""
    path.write_bytes(b"")
    return path


def _encode(
    path: Path,
    *,
    ffmpeg: str,
    seconds: float,
    size: str,
    container: list[str],
    video: list[str] | None = None,
    audio: list[str] | None = None,
) -> None:
    video = video or ["-c:v", "libx264", "-preset", "ultrafast"]
    audio = audio or ["-c:a", "aac", "-b:a", "96k"]
    args = [
        ffmpeg,
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate={DEFAULT_RATE}:duration={seconds}",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        *video,
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(KEYFRAME_INTERVAL_FRAMES),
        *audio,
        *container,
        f"file:{path.absolute()}",
    ]
    result = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip()[-2000:]
        raise SampleGenerationFailed(f"ffmpeg could not make {path.name}: {detail}")
