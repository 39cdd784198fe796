"""What one rendition of an upload is, as the attempt records it and `show --json` prints it
under `streaming.renditions`: its picture, bitrate and size, and its quality against the source
where it was re-encoded (a copy of the source's own bytes has no loss to measure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RenditionSummary:
    """One rendition: name (`720p`, `source`), width, height, average bits per second, bytes,
    whether re-encoded, and PSNR (dB) and SSIM (0-1) where measured."""

    name: str
    width: int
    height: int
    bitrate: int
    size_bytes: int
    reencoded: bool
    psnr: float | None = None
    ssim: float | None = None

    def as_json(self) -> dict[str, Any]:
        """The rendition as stored on the attempt and printed by `show --json`."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RenditionSummary:
        """A rendition from what `as_json` stored (unknown keys ignored: rows outlive code)."""
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        return cls(**known)


def describe_renditions(renditions: Iterable[RenditionSummary]) -> str:
    """`720p 1280x720 2.91 Mbit/s PSNR 46.3 dB SSIM 0.996; source 1920x1080 6.27 Mbit/s`."""
    described = []
    for r in renditions:
        quality = ""
        if r.psnr is not None and r.ssim is not None:
            quality = f" PSNR {r.psnr:.1f} dB SSIM {r.ssim:.3f}"
        described.append(f"{r.name} {r.width}x{r.height} {r.bitrate / 1e6:.2f} Mbit/s{quality}")
    return "; ".join(described)
