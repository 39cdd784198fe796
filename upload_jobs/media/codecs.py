"""Which codecs and containers browsers play from an MP4, and what needs more than a new layout."""

from __future__ import annotations

from upload_jobs.media.mp4 import HANDLER_AUDIO, HANDLER_VIDEO, Mp4Layout

BROWSER_VIDEO_FOURCCS = frozenset({"avc1", "avc3", "hvc1", "hev1", "av01", "vp09"})
HEVC_FOURCCS = frozenset({"hvc1", "hev1"})
MP4_SAFE_AUDIO_FOURCCS = frozenset({"mp4a", "ac-3", "ec-3", "Opus"})
QUICKTIME_BRAND = "qt  "


def remux_needed_for(layout: Mp4Layout, *, every_track: bool = False) -> str | None:
    """Why the file needs ffmpeg even where its layout is right (PCM or FLAC audio, HEVC tagged
    `hev1`, a QuickTime container uploaded as video/mp4), or None. `every_track`: check all
    tracks (a file kept whole), not only the first video and audio ffmpeg keeps."""
    if layout.major_brand == QUICKTIME_BRAND:
        return "it is a QuickTime file (brand 'qt  '), which is not served as video/mp4"
    videos, audios = layout.video_tracks, layout.audio_tracks
    for track in videos if every_track else videos[:1]:
        if track.fourcc == "hev1":
            return f"video track {track.track_id} is HEVC tagged 'hev1', which Safari will not play"
        if track.fourcc not in BROWSER_VIDEO_FOURCCS:
            return f"video track {track.track_id} is {track.fourcc!r}, which browsers do not play"
    for track in audios if every_track else audios[:1]:
        if track.fourcc not in MP4_SAFE_AUDIO_FOURCCS:
            return (
                f"audio track {track.track_id} is {track.fourcc!r}, which MP4 players do not "
                "play: it must become AAC"
            )
    if every_track:
        for track in layout.tracks:
            if track.handler not in (HANDLER_VIDEO, HANDLER_AUDIO):
                return (
                    f"track {track.track_id} is a {track.handler!r} track (not audio or video), "
                    "which the remux leaves out"
                )
    return None
