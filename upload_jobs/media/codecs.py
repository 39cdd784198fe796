"""Which codecs browsers play from an MP4, and what needs a conversion, not only a new layout."""

from __future__ import annotations

from upload_jobs.media.mp4 import Mp4Layout

BROWSER_VIDEO_FOURCCS = frozenset({"avc1", "avc3", "hvc1", "hev1", "av01", "vp09"})
MP4_SAFE_AUDIO_FOURCCS = frozenset({"mp4a", "ac-3", "ec-3", "Opus"})


def conversion_needed(layout: Mp4Layout) -> str | None:
    """Why some track needs ffmpeg to change it for MP4 players (PCM or other audio that must
    become AAC, HEVC tagged `hev1`, which Safari will not play), or None: then moving the index
    is all the file needs. Every audio and video track counts: the upload keeps them all."""
    for track in layout.video_tracks:
        if track.fourcc == "hev1":
            return f"video track {track.track_id} is HEVC tagged 'hev1', which Safari will not play"
    for track in layout.audio_tracks:
        if track.fourcc not in MP4_SAFE_AUDIO_FOURCCS:
            return (
                f"audio track {track.track_id} is {track.fourcc!r}, which MP4 players do not "
                "play: it must become AAC"
            )
    return None


def unplayable_video(layout: Mp4Layout) -> str | None:
    """Why browsers cannot show the file's video whatever is done to its container (no video
    track, or a codec they do not decode), or None."""
    if not layout.video_tracks:
        return "it has no video track"
    fourcc = layout.video_tracks[0].fourcc
    if fourcc not in BROWSER_VIDEO_FOURCCS:
        return f"its video is {fourcc!r}, which browsers do not play"
    return None


# What browsers decode everywhere, measured in Debian's Chromium (ARCHITECTURE.md): not HEVC,
# Motion JPEG, ProRes or MPEG-4 Part 2 video, not AC-3, E-AC-3 or PCM audio.
EVERY_BROWSER_VIDEO_FOURCCS = frozenset({"avc1", "avc3", "av01", "vp09"})
EVERY_BROWSER_AUDIO_FOURCCS = frozenset({"mp4a", "Opus"})
# What an HLS rendition carries as it is (no re-encode): H.264 and AAC.
HLS_VIDEO_FOURCCS = frozenset({"avc1", "avc3"})
HLS_AUDIO_FOURCCS = frozenset({"mp4a"})


def video_transcode_needed(layout: Mp4Layout) -> str | None:
    """Why the file's video must be re-encoded (to H.264) for every browser to show it (HEVC,
    Motion JPEG, ProRes, MPEG-4 Part 2...), or None; no video at all is `unplayable_video`'s."""
    for track in layout.video_tracks:
        if track.fourcc not in EVERY_BROWSER_VIDEO_FOURCCS:
            return f"video track {track.track_id} is {track.fourcc!r}, which browsers do not play"
    return None


def audio_transcode_needed(layout: Mp4Layout) -> str | None:
    """Why some audio track must become AAC for every browser to play it (AC-3, E-AC-3, PCM...),
    or None."""
    for track in layout.audio_tracks:
        if track.fourcc not in EVERY_BROWSER_AUDIO_FOURCCS:
            return (
                f"audio track {track.track_id} is {track.fourcc!r}, which browsers do not play: "
                "it must become AAC"
            )
    return None
