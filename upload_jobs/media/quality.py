"""What a re-encode cost in picture quality: PSNR and SSIM of a rendition against its source,
by ffmpeg's own `psnr` and `ssim` filters, the source scaled to the rendition's size (as a
player would show it there). Measured, never a reason to fail: what cannot be read is None."""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

# PSNR of 8-bit pictures: 10 log10(255^2 / MSE); identical frames (MSE 0) are capped here.
MAX_PSNR_DB = 100.0
_STATS = ("quality-psnr.log", "quality-ssim.log")


@dataclass(frozen=True)
class Quality:
    """Average PSNR (dB, from the mean squared error) and SSIM (0-1) over the frames compared."""

    psnr: float
    ssim: float
    frames: int


def measure_quality(
    ffmpeg: str,
    source: Path,
    rendition: Path,
    width: int,
    height: int,
    *,
    sample_seconds: float,
    timeout_seconds: float = 3600,
) -> Quality | None:
    """PSNR and SSIM of `rendition` (a file or media playlist) against `source` scaled to
    `width`x`height`, over their first `sample_seconds`; None when ffmpeg cannot compare them."""
    if sample_seconds <= 0:
        return None
    folder = rendition.parent
    graph = (
        f"[0:v]format=yuv420p,setpts=PTS-STARTPTS,split[d1][d2];"
        f"[1:v]scale={width}:{height}:flags=bicubic,format=yuv420p,setpts=PTS-STARTPTS,"
        f"split[r1][r2];[d1][r1]psnr=stats_file={_STATS[0]};[d2][r2]ssim=stats_file={_STATS[1]}"
    )
    limit = ["-t", f"{sample_seconds:g}"]
    if "/" in ffmpeg:  # run from the rendition's folder: a relative path would not be found
        ffmpeg = str(Path(ffmpeg).absolute())
    command = [ffmpeg, "-nostdin", "-hide_banner", "-v", "error",
               *limit, "-i", f"file:{rendition.absolute()}",
               *limit, "-i", f"file:{source.absolute()}",
               "-filter_complex", graph, "-f", "null", "-"]  # fmt: skip
    try:
        # The stats files are named relative to the rendition's folder: no path escaping needed.
        done = subprocess.run(command, cwd=folder, capture_output=True, timeout=timeout_seconds)
        if done.returncode != 0:
            return None
        return _averages(folder / _STATS[0], folder / _STATS[1])
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    finally:
        for name in _STATS:
            (folder / name).unlink(missing_ok=True)


def _averages(psnr_log: Path, ssim_log: Path) -> Quality | None:
    mses = [float(_field(line, "mse_avg")) for line in psnr_log.read_text().splitlines() if line]
    ssims = [float(_field(line, "All")) for line in ssim_log.read_text().splitlines() if line]
    if not mses or not ssims:
        return None
    mse = sum(mses) / len(mses)
    psnr = MAX_PSNR_DB if mse == 0 else min(MAX_PSNR_DB, 10 * math.log10(255**2 / mse))
    return Quality(round(psnr, 2), round(sum(ssims) / len(ssims), 4), min(len(mses), len(ssims)))


def _field(line: str, name: str) -> str:
    """The value of `name:` in a stats line (`n:1 mse_avg:2.5 ...`, `n:1 ... All:0.9 (..)`)."""
    for item in line.split():
        key, _, value = item.partition(":")
        if key == name:
            return value
    raise ValueError(f"no {name} in {line!r}")
