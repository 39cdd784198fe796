"""HLS packages: the source's own tracks cut into fMP4 segments (`hls`), or re-encoded into a
ladder of H.264/AAC renditions (`abr`), with the master playlist written from what was measured.
The package is a folder in the attempt's work dir; the source is only read."""

from __future__ import annotations

import shutil
import stat
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

from upload_jobs.errors import OptimizationFailed
from upload_jobs.media.codec_strings import codec_strings
from upload_jobs.media.codecs import HLS_AUDIO_FOURCCS, HLS_VIDEO_FOURCCS
from upload_jobs.media.content import WouldLoseContent, lasts_as_long
from upload_jobs.media.encoding import (
    DEFAULT_ENCODER,
    EncoderSettings,
    aac_options,
    ffmpeg_input,
    h264_options,
    keyframe_grid,
)
from upload_jobs.media.ffmpeg_process import run_ffmpeg
from upload_jobs.media.ladder import Rendition
from upload_jobs.media.moov import MoovUnreadable
from upload_jobs.media.mp4 import HANDLER_AUDIO, HANDLER_VIDEO, Mp4Layout, read_layout
from upload_jobs.media.playlists import (
    MASTER_PLAYLIST,
    MediaPlaylist,
    PlaylistInvalid,
    Variant,
    master_playlist,
    parse_media_playlist,
)
from upload_jobs.media.remux import OutputInvalid
from upload_jobs.storage.upload_body import FileIdentity

MEDIA_PLAYLIST = "index.m3u8"
# A player needs a whole segment before the first frame: 2 s segments took Chromium to its first
# frame in 2.36 s over 2 Mbit/s and 60 ms, 4 s segments in 4.14 s (bench/abr.py's recording).
DEFAULT_SEGMENT_SECONDS = 2.0
COPIED_RENDITION = "source"
# Video and audio go into the variant; a timecode or hint track is not content a viewer misses.
CARRIED_OR_REMADE_HANDLERS = frozenset({HANDLER_VIDEO, HANDLER_AUDIO, "tmcd", "hint"})


@dataclass(frozen=True)
class PackagedRendition:
    """One rendition as written: its folder, picture, measured bitrates and size, and (once
    measured) its quality against the source; `reencoded` False when the source's own bytes."""

    name: str
    width: int
    height: int
    bitrate: int  # average bits per second over the whole rendition
    peak_bitrate: int  # the largest segment's bits per second
    size_bytes: int
    reencoded: bool
    playlist: MediaPlaylist
    psnr: float | None = None
    ssim: float | None = None

    @property
    def playlist_path(self) -> str:
        """The media playlist's path within the package."""
        return f"{self.name}/{MEDIA_PLAYLIST}"

    def files(self) -> list[str]:
        """The rendition's files within the package: init segment, segments, then playlist."""
        names = [self.playlist.init_uri, *(s.uri for s in self.playlist.segments), MEDIA_PLAYLIST]
        return [f"{self.name}/{name}" for name in names]


@dataclass(frozen=True)
class HlsPackage:
    """A finished package: its folder, its files (the master playlist last: a player that finds
    it finds every file it names), and its renditions, highest first."""

    directory: Path
    renditions: tuple[PackagedRendition, ...]

    @property
    def files(self) -> list[str]:
        """Every file to upload, relative to the folder, the master playlist last."""
        return [name for r in self.renditions for name in r.files()] + [MASTER_PLAYLIST]

    @property
    def total_bytes(self) -> int:
        """The bytes of every file of the package."""
        return sum((self.directory / name).stat().st_size for name in self.files)

    @property
    def first_offered(self) -> PackagedRendition:
        """The rendition a player starts with: the master playlist lists the lowest first."""
        return min(self.renditions, key=lambda r: r.peak_bitrate)

    @property
    def startup_bytes(self) -> int:
        """What a player fetches before the first frame of the first variant it is offered:
        master playlist, media playlist, init segment, first segment."""
        first = self.first_offered
        names = [MASTER_PLAYLIST, first.playlist_path, f"{first.name}/{first.playlist.init_uri}",
                 f"{first.name}/{first.playlist.segments[0].uri}"]  # fmt: skip
        return sum((self.directory / name).stat().st_size for name in names)

    def with_renditions(self, renditions: list[PackagedRendition]) -> HlsPackage:
        """The same package with its renditions' measurements updated."""
        return replace(self, renditions=tuple(renditions))


def hls_copy_refusal(layout: Mp4Layout) -> str | None:
    """Why the source's own tracks cannot be cut into HLS segments as they are, or None: HLS
    carries here one H.264 video and at most one AAC audio, nothing else."""
    return hls_track_refusal(layout) or hls_codec_refusal(layout)


def hls_codec_refusal(layout: Mp4Layout) -> str | None:
    """Why the source's codecs cannot go into HLS as they are (not H.264/AAC), or None."""
    if not layout.video_tracks:
        return None
    video = layout.video_tracks[0]
    if video.fourcc not in HLS_VIDEO_FOURCCS:
        return f"its video is {video.fourcc!r}, not H.264"
    if layout.audio_tracks and layout.audio_tracks[0].fourcc not in HLS_AUDIO_FOURCCS:
        return f"its audio is {layout.audio_tracks[0].fourcc!r}, not AAC"
    return None


def hls_track_refusal(layout: Mp4Layout) -> str | None:
    """What HLS would lose of the source's tracks (it carries one video and one audio), or
    None; a re-encode cannot help with that."""
    if not layout.video_tracks:
        return "it has no video track"
    kept = [t for t in layout.tracks if t.handler not in CARRIED_OR_REMADE_HANDLERS]
    if len(layout.video_tracks) > 1 or len(layout.audio_tracks) > 1 or kept:
        return (
            f"it has {len(layout.video_tracks)} video, {len(layout.audio_tracks)} audio and "
            f"{len(kept)} other tracks; an HLS variant carries one video and one audio"
        )
    return None


def package_hls(
    source: Path,
    layout: Mp4Layout,
    work_dir: Path,
    ffmpeg: str,
    ladder: list[Rendition] | None,
    *,
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
    encoder: EncoderSettings = DEFAULT_ENCODER,
    timeout_seconds: float = 3600,
    on_progress: Callable[[float], None] | None = None,
    on_command: Callable[[list[str]], None] | None = None,
) -> HlsPackage:
    """Cut `source` into an HLS package in a new folder of `work_dir`: its own tracks as they
    are (`ladder` None) or each rung of `ladder` re-encoded. Validated, master playlist written;
    any failure removes the folder and raises OptimizationFailed (never touches the source)."""
    refusal = hls_track_refusal(layout) if ladder else hls_copy_refusal(layout)
    if refusal:
        raise WouldLoseContent(f"HLS cannot carry this file as it is: {refusal}")
    before = FileIdentity.of(source.stat())
    directory = work_dir / f"hls-{uuid.uuid4().hex}"
    try:
        directory.mkdir(parents=True)
        names = [r.name for r in ladder] if ladder else [COPIED_RENDITION]
        args = _package_args(ffmpeg, source, layout, directory, ladder, segment_seconds, encoder)
        if on_command is not None:
            on_command(args)
        with encoder.slot() if ladder else nullcontext():
            run_ffmpeg(args, timeout_seconds, layout.duration_seconds, on_progress)
        if FileIdentity.of(source.stat()) != before:
            raise OptimizationFailed(f"source {source} changed while it was being packaged")
        renditions = [_finished(directory, name, ladder is not None, layout) for name in names]
        _write_master(directory, renditions)
        return HlsPackage(directory, tuple(renditions))
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def _package_args(
    ffmpeg: str, source: Path, layout: Mp4Layout, directory: Path,
    ladder: list[Rendition] | None, segment_seconds: float, encoder: EncoderSettings,
) -> list[str]:  # fmt: skip
    audio = bool(layout.audio_tracks)
    args = ffmpeg_input(ffmpeg, source)
    if ladder is None:
        args += ["-map", "0:v:0", *(["-map", "0:a:0"] if audio else []), "-c", "copy"]
        stream_map = "v:0" + (",a:0" if audio else "") + f",name:{COPIED_RENDITION}"
    else:
        scaled = ";".join(
            f"[s{i}]scale={r.width}:{r.height}:flags=bicubic,setsar=1[v{i}]"
            for i, r in enumerate(ladder)
        )
        split = "".join(f"[s{i}]" for i in range(len(ladder)))
        args += ["-filter_complex", f"[0:v:0]split={len(ladder)}{split};{scaled}"]
        variants = []
        for i, rung in enumerate(ladder):
            args += ["-map", f"[v{i}]", *h264_options(f"v:{i}", kbps=rung.video_kbps)]
            if audio:
                args += ["-map", "0:a:0", *aac_options(f"a:{i}", rung.audio_kbps)]
            variants.append(f"v:{i}" + (f",a:{i}" if audio else "") + f",name:{rung.name}")
        args += [*keyframe_grid(segment_seconds), *encoder.thread_options()]
        stream_map = " ".join(variants)
    args += ["-f", "hls", "-hls_time", f"{segment_seconds:g}", "-hls_playlist_type", "vod",
             "-hls_segment_type", "fmp4", "-hls_flags", "independent_segments",
             "-hls_fmp4_init_filename", "init.mp4",
             "-hls_segment_filename", str(directory / "%v" / "seg%05d.m4s"),
             "-var_stream_map", stream_map, str(directory / "%v" / MEDIA_PLAYLIST)]  # fmt: skip
    return args


def _finished(directory: Path, name: str, reencoded: bool, source: Mp4Layout) -> PackagedRendition:
    """The rendition `name` as ffmpeg left it, checked: a finished playlist whose files are all
    there and not empty, as long as the source, with codecs a player can be told."""
    folder = directory / name
    try:
        playlist = parse_media_playlist((folder / MEDIA_PLAYLIST).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, PlaylistInvalid) as exc:
        raise OutputInvalid(f"HLS rendition {name}'s playlist is not usable: {exc}") from exc
    sizes = {}
    for uri in [playlist.init_uri, *(s.uri for s in playlist.segments)]:
        try:
            found = (folder / uri).stat()
        except OSError:
            found = None
        if found is None or not stat.S_ISREG(found.st_mode) or found.st_size == 0:
            raise OutputInvalid(f"HLS rendition {name}'s file {uri} is missing or empty")
        sizes[uri] = found.st_size
    expected = source.duration_seconds
    if expected is not None and not lasts_as_long(expected, playlist.duration_seconds):
        raise OutputInvalid(
            f"HLS rendition {name} lasts {playlist.duration_seconds:.2f} s but the source lasts "
            f"{expected:.2f} s"
        )
    width, height = _picture_of(folder / playlist.init_uri, name)
    total = sum(sizes.values())
    seconds = max(playlist.duration_seconds, 0.001)
    average = round(total * 8 / seconds)
    # A short last segment can read as a peak it is not: no segment counts below its own second.
    peak = max(sizes[s.uri] * 8 / max(s.seconds, 1.0) for s in playlist.segments)
    return PackagedRendition(
        name, width, height, average, max(round(peak), average), total, reencoded, playlist
    )


def _picture_of(init_segment: Path, name: str) -> tuple[int, int]:
    layout = read_layout(init_segment)
    if not layout.video_tracks:
        raise OutputInvalid(f"HLS rendition {name} has no video track")
    return layout.video_tracks[0].display_size


def _write_master(directory: Path, renditions: list[PackagedRendition]) -> None:
    variants = []
    for rendition in renditions:
        init = directory / rendition.name / rendition.playlist.init_uri
        try:
            codecs = tuple(codec_strings(init.read_bytes()))
        except (OSError, MoovUnreadable) as exc:
            raise OutputInvalid(f"HLS rendition {rendition.name}'s codecs: {exc}") from exc
        r = rendition
        variants.append(
            Variant(r.playlist_path, r.peak_bitrate, r.bitrate, r.width, r.height, codecs)
        )
    (directory / MASTER_PLAYLIST).write_text(master_playlist(variants), "utf-8")
