"""What an optimization produced: how (`StreamingPath`), from which options, what to upload,
the levels it passed over, and what each rendition is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from upload_jobs.media.encoding import DEFAULT_ENCODER, EncoderSettings
from upload_jobs.media.hls import DEFAULT_SEGMENT_SECONDS, HlsPackage
from upload_jobs.media.mp4 import Mp4Layout
from upload_jobs.media.renditions import RenditionSummary
from upload_jobs.settings import Preset
from upload_jobs.storage.upload_body import UploadBody


class StreamingPath(StrEnum):
    """How an attempt got its upload stream-ready (recorded as `optimization_path`)."""

    ALREADY_READY = "already_ready"  # the source streams as it is
    MOVED_IN_PROCESS = "moved_in_process"  # moov moved to the front, sent from the source
    FFMPEG_REMUX = "ffmpeg_remux"  # a new file written by ffmpeg in the work dir
    TRANSCODED = "transcoded"  # re-encoded to H.264/AAC by ffmpeg: browsers play it
    HLS_PACKAGED = "hls_packaged"  # one rendition cut into HLS segments (copied or re-encoded)
    ABR_LADDER = "abr_ladder"  # an HLS ladder of re-encoded renditions
    NOT_REQUESTED = "not_requested"  # preset none
    FALLBACK_ORIGINAL = "fallback_original"  # the optimization failed: the original went up

    @property
    def streams(self) -> bool:
        """Whether an upload made this way is stream-ready."""
        return self not in (self.NOT_REQUESTED, self.FALLBACK_ORIGINAL)


@dataclass(frozen=True)
class DeclinedLevel:
    """A preset level that failed and was passed over for the next: why, and its kind."""

    preset: str
    kind: str
    reason: str

    def sentence(self) -> str:
        """`abr (no_ladder): the video has no picture size`."""
        return f"{self.preset} ({self.kind}): {self.reason}"


@dataclass(frozen=True)
class StreamingOptions:
    """How far the optimization may go: the in-process move, re-encoding what browsers cannot
    play, x264's threads, HLS segment length, how much of each re-encode is compared with the
    source for its quality, and ffmpeg's time limit."""

    in_process: bool = True
    transcode_unplayable: bool = True
    encoder: EncoderSettings = DEFAULT_ENCODER
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS
    quality_sample_seconds: float = 60.0
    timeout_seconds: float = 3600


@dataclass(frozen=True)
class LevelRequest:
    """What every preset level works from: the source and its layout, the work dir, the ffmpeg
    (None: found when needed), the options, and who hears of progress and commands."""

    source: Path
    layout: Mp4Layout
    work_dir: Path
    ffmpeg: str | None
    options: StreamingOptions
    on_progress: Callable[[float], None] | None = None
    on_command: Callable[[list[str]], None] | None = None


@dataclass(frozen=True)
class OptimizationResult:
    """What to upload after optimizing, how it was made, and what to delete afterwards."""

    body: UploadBody
    path: StreamingPath
    preset: Preset
    # Why the cheaper in-process move was not taken, when ffmpeg ran; why browsers will not play
    # it anyway, when only its layout was made right (video they do not decode).
    reason: str | None
    source_duration_seconds: float | None
    output_duration_seconds: float | None
    temp_path: Path | None
    # The layouts the step read, passed on so the measure step walks neither file again.
    source_layout: Mp4Layout | None = None
    upload_layout: Mp4Layout | None = None
    # For an HLS level: the package (its master playlist is `body`); and what each rendition
    # is, with its quality where it was re-encoded.
    package: HlsPackage | None = None
    renditions: tuple[RenditionSummary, ...] = ()
    # The levels above this one that failed, in order (abr before hls before faststart).
    declined: tuple[DeclinedLevel, ...] = ()
