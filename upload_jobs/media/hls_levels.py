"""The HLS levels: `hls` cuts the source's own H.264/AAC tracks into segments (re-encoding them
at the source's size when browsers could not play them), `abr` re-encodes a ladder chosen from
the source; each re-encoded rendition's quality is measured against the source."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from upload_jobs.media.hls import (
    HlsPackage,
    PackagedRendition,
    hls_codec_refusal,
    hls_track_refusal,
    package_hls,
)
from upload_jobs.media.ladder import Rendition, choose_ladder
from upload_jobs.media.mp4 import Mp4Layout
from upload_jobs.media.optimization import (
    LevelRequest,
    OptimizationResult,
    StreamingOptions,
    StreamingPath,
)
from upload_jobs.media.playlists import MASTER_PLAYLIST
from upload_jobs.media.quality import measure_quality
from upload_jobs.media.remux import UnsupportedCodec, resolve_ffmpeg
from upload_jobs.media.renditions import RenditionSummary
from upload_jobs.settings import Preset
from upload_jobs.storage.upload_body import UploadBody


def hls_level(request: LevelRequest, preset: Preset) -> OptimizationResult:
    """The source as an HLS package for `preset` (`hls` or `abr`) in the work dir."""
    source, layout, options = request.source, request.layout, request.options
    binary = resolve_ffmpeg(request.ffmpeg)
    ladder, reason = _rungs(layout, preset, options)
    package = package_hls(
        source, layout, request.work_dir, binary, ladder,
        segment_seconds=options.segment_seconds, encoder=options.encoder,
        timeout_seconds=options.timeout_seconds, on_progress=request.on_progress,
        on_command=request.on_command,
    )  # fmt: skip
    package = package.with_renditions(
        [_measured(binary, source, package, r, options) for r in package.renditions]
    )
    path = StreamingPath.ABR_LADDER if preset is Preset.ABR else StreamingPath.HLS_PACKAGED
    master = package.directory / MASTER_PLAYLIST
    return OptimizationResult(
        UploadBody.of_file(master), path, preset, reason, layout.duration_seconds,
        package.renditions[0].playlist.duration_seconds, package.directory, layout, None,
        package=package, renditions=tuple(_summary(r) for r in package.renditions),
    )  # fmt: skip


def _rungs(
    layout: Mp4Layout, preset: Preset, options: StreamingOptions
) -> tuple[list[Rendition] | None, str | None]:
    """The rungs to encode (None: the source's own tracks) and why they are re-encoded."""
    width, height = layout.video_tracks[0].display_size if layout.video_tracks else (0, 0)
    duration = layout.duration_seconds
    kbps = layout.file_size * 8 / 1000 / duration if duration else None
    if preset is Preset.ABR:
        ladder = choose_ladder(width, height, kbps)
        return ladder, f"a ladder of {len(ladder)} from the source's {width}x{height}"
    codecs = hls_codec_refusal(layout)
    if hls_track_refusal(layout) or codecs is None:
        return None, None  # as it is; or refused by the packager, saying what HLS would lose
    if not options.transcode_unplayable:
        raise UnsupportedCodec(
            f"HLS carries H.264/AAC and {codecs}; re-encoding is turned off "
            "(UPLOAD_JOBS_TRANSCODE_UNPLAYABLE)"
        )
    return choose_ladder(width, height, kbps)[:1], f"{codecs}: re-encoded to H.264/AAC"


def _measured(
    ffmpeg: str, source: Path, package: HlsPackage, rendition: PackagedRendition,
    options: StreamingOptions,
) -> PackagedRendition:  # fmt: skip
    if not rendition.reencoded:
        return rendition
    playlist = package.directory / rendition.playlist_path
    with options.encoder.slot():  # decoding both is CPU work as much as encoding
        quality = measure_quality(
            ffmpeg, source, playlist, rendition.width, rendition.height,
            sample_seconds=options.quality_sample_seconds, timeout_seconds=options.timeout_seconds,
        )  # fmt: skip
    if quality is None:
        return rendition
    return replace(rendition, psnr=quality.psnr, ssim=quality.ssim)


def _summary(rendition: PackagedRendition) -> RenditionSummary:
    return RenditionSummary(
        rendition.name, rendition.width, rendition.height, rendition.bitrate,
        rendition.size_bytes, rendition.reencoded, rendition.psnr, rendition.ssim,
    )  # fmt: skip
