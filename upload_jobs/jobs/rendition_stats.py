"""Renditions across completed jobs (`upload-jobs stats`, `/api/stats`): per rendition name
(`720p`, `transcoded`, `source`), how many jobs carry it, its median bitrate, PSNR and SSIM."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RenditionStats:
    """One rendition name's figures over the jobs that uploaded it."""

    rendition: str
    jobs: int
    median_bitrate: int
    median_psnr: float | None
    median_ssim: float | None


def rendition_stats(renditions_per_job: Iterable[list[dict[str, Any]]]) -> list[RenditionStats]:
    """The figures of every rendition name, tallest picture first."""
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for renditions in renditions_per_job:
        for rendition in renditions:
            by_name[str(rendition.get("name"))].append(rendition)
    found = []
    for name, rows in by_name.items():
        found.append(RenditionStats(
            name, len(rows), int(statistics.median(r.get("bitrate") or 0 for r in rows)),
            _median(r.get("psnr") for r in rows), _median(r.get("ssim") for r in rows),
        ))  # fmt: skip
    heights = {name: max(r.get("height") or 0 for r in rows) for name, rows in by_name.items()}
    return sorted(found, key=lambda stats: -heights[stats.rendition])


def _median(values: Iterable[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return round(statistics.median(known), 4) if known else None
