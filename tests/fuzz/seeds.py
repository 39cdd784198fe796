"""The clips the fuzzers mutate, made by ffmpeg with lavfi (never committed): the layouts the
parsers meet most (moov at the end, faststart, fragmented, QuickTime with PCM, two audio
tracks)."""

from __future__ import annotations

from pathlib import Path

from tests.support import mp4_files
from upload_jobs.media import samples

SECONDS = 1.0
SIZE = "160x120"


def make_seeds(folder: Path, ffmpeg: str) -> dict[str, bytes]:
    """Each seed clip's bytes, by name, made in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    common = {"ffmpeg": ffmpeg, "seconds": SECONDS, "size": SIZE}
    made = {
        "moov-at-end": samples.make_moov_at_end_mp4(folder / "end.mp4", **common),
        "faststart": samples.make_faststart_mp4(folder / "fast.mp4", **common),
        "fragmented": samples.make_fragmented_mp4(folder / "frag.mp4", **common),
        "quicktime-pcm": samples.make_mov_with_pcm_audio(folder / "pcm.mov", **common),
        "two-audio": mp4_files.two_audio_tracks(folder / "two.mp4", ffmpeg),
    }
    return {name: path.read_bytes() for name, path in made.items()}
