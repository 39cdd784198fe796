"""Recordings as other muxers and tools leave them, made in the tests (never committed):
GStreamer's `qtmux` and `mp4mux` (moov at either end, fragmented, two audio tracks, PCM,
Motion JPEG, killed mid-way with robust muxing), ffmpeg with subtitles, chapters and timecode,
and exiftool's phone-like Apple keys and rotation. A maker whose tool is missing is skipped
with one line saying how to get it (`.ci/run` installs them all)."""

from __future__ import annotations

import functools
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

GST = "gst-launch-1.0"
HOW_TO_GET = {
    GST: "apt-get install gstreamer1.0-tools gstreamer1.0-plugins-{base,good,bad,ugly} "
    "gstreamer1.0-libav",
    "exiftool": "apt-get install libimage-exiftool-perl",
}
_VIDEO = (
    "videotestsrc num-buffers=50 ! video/x-raw,width=160,height=120,framerate=25/1 ! "
    "x264enc speed-preset=ultrafast key-int-max=10 ! h264parse"
)
_AAC = "audiotestsrc freq={freq} num-buffers=94 ! audio/x-raw,rate=48000,channels=2 ! " \
    "audioconvert ! avenc_aac ! aacparse"  # fmt: skip


CHAPTERS = (
    ";FFMETADATA1\ntitle=Chaptered\n"
    "[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1000\ntitle=one\n"
    "[CHAPTER]\nTIMEBASE=1/1000\nSTART=1000\nEND=2000\ntitle=two\n"
)


# The test pattern, the tone and the third input (subtitles, a second tone).
EVERY_INPUT = ("-map", "0", "-map", "1", "-map", "2")


@dataclass(frozen=True)
class Recording:
    """How a corpus file is made, for the note's table, and the tool it needs."""

    made_by: str
    make: Callable[[Path, str], Path]
    tool: str = "ffmpeg"


GST_ELEMENTS = ("qtmux", "mp4mux", "x264enc", "avenc_aac", "jpegenc", "h264parse", "aacparse")


def require(tool: str) -> None:
    """Skip the test, in one line saying how to get it, when `tool` (for GStreamer, with every
    element the corpus uses) is not installed."""
    missing = _missing(tool)
    if missing:
        pytest.skip(f"{missing} not installed: {HOW_TO_GET.get(tool, tool)}")


@functools.cache
def _missing(tool: str) -> str | None:
    if shutil.which(tool) is None:
        return f"{tool} is"
    if tool != GST:
        return None
    absent = [
        element
        for element in GST_ELEMENTS
        if subprocess.run(["gst-inspect-1.0", element], capture_output=True).returncode != 0
    ]
    return f"GStreamer's {', '.join(absent)} are" if absent else None


def gst(pipeline: str, target: Path) -> Path:
    """Run a GStreamer pipeline whose sink writes `target` (its `{out}`)."""
    command = [GST, "-q", "-e", *shlex.split(pipeline.format(out=shlex.quote(str(target))))]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return target


def gst_killed(target: Path, _: str) -> Path:
    """A live qtmux recording with robust muxing (moov kept up to date in reserved space at the
    front), killed with SIGKILL after two seconds."""
    pipeline = (
        "videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=25/1 ! "
        "x264enc speed-preset=ultrafast key-int-max=10 tune=zerolatency ! h264parse ! "
        "qtmux reserved-max-duration=20000000000 reserved-moov-update-period=500000000 ! "
        f"filesink location={shlex.quote(str(target))}"
    )
    process = subprocess.Popen([GST, "-q", *shlex.split(pipeline)])
    time.sleep(2.5)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    return target


def ffmpeg_made(*options: str, inputs: tuple[str, ...] = ()) -> Callable[[Path, str], Path]:
    """A maker running ffmpeg on a test pattern, a tone and `inputs` with `options`."""

    def make(target: Path, ffmpeg: str) -> Path:
        command = [ffmpeg, "-nostdin", "-v", "error", "-y",
                   "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=2",
                   "-f", "lavfi", "-i", "sine=frequency=440:duration=2",
                   *inputs, *options, f"file:{target}"]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        return target

    return make


def with_subtitles_and_chapters(target: Path, ffmpeg: str) -> Path:
    """H.264, AAC, an English mov_text subtitle track and two chapters, moov at the end."""
    srt = target.with_suffix(".srt")
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n\n"
                   "2\n00:00:01,000 --> 00:00:02,000\nworld\n")  # fmt: skip
    chapters = target.with_suffix(".ffmeta")
    chapters.write_text(CHAPTERS)
    made = ffmpeg_made(
        *EVERY_INPUT,
        "-map_metadata",
        "3",
        "-map_chapters",
        "3",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        "-c:s",
        "mov_text",
        "-metadata:s:s:0",
        "language=eng",
        "-f",
        "mp4",
        inputs=("-i", f"file:{srt}", "-i", f"file:{chapters}"),
    )(target, ffmpeg)
    srt.unlink()
    chapters.unlink()
    return made


def with_timecode_and_two_languages(target: Path, ffmpeg: str) -> Path:
    """QuickTime: H.264, English and French PCM tracks, a timecode track, a title."""
    return ffmpeg_made(
        *EVERY_INPUT,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "pcm_s16le",
        "-metadata:s:a:0",
        "language=eng",
        "-metadata:s:a:1",
        "language=fra",
        "-timecode",
        "01:00:00:00",
        "-metadata",
        "title=Two languages",
        "-f",
        "mov",
        inputs=("-f", "lavfi", "-i", "sine=frequency=660:duration=2"),
    )(target, ffmpeg)


def phone_like(target: Path, ffmpeg: str) -> Path:
    """QuickTime with Apple's keys as a phone writes them (make, model, software, creation
    date, location) by exiftool, rotated 90 degrees, then moov moved to the end by ffmpeg
    with every tag kept."""
    plain = ffmpeg_made("-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-f", "mov")(
        target.with_name("plain.mov"), ffmpeg
    )
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-Keys:Make=Apple", "-Keys:Model=iPhone 15",
         "-Keys:Software=17.1", "-Keys:CreationDate=2026:01:02 03:04:05+01:00",
         "-Keys:GPSCoordinates=40.7128 N, 74.0060 W, 10", "-Rotation=90", str(plain)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", f"file:{plain}", "-map", "0",
         "-c", "copy", "-map_metadata", "0", "-movflags", "+use_metadata_tags", "-f", "mov",
         f"file:{target}"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    plain.unlink()
    return target


def _gst_maker(pipeline: str) -> Callable[[Path, str], Path]:
    return lambda target, _: gst(pipeline, target)


def _gst_muxed(mux: str, *audio: str) -> Callable[[Path, str], Path]:
    """H.264 from a test pattern and each of `audio` into `mux`, written to the target."""
    branches = " ".join(f"{branch} ! m." for branch in audio)
    return _gst_maker(f"{_VIDEO} ! {mux} name=m ! filesink location={{out}} {branches}")


_PCM = "audiotestsrc num-buffers=94 ! audio/x-raw,format=S16LE,rate=48000,channels=2"
_MJPEG = (
    "videotestsrc num-buffers=50 ! video/x-raw,width=160,height=120,framerate=25/1 ! jpegenc ! "
    "qtmux ! filesink location={out}"
)

CORPUS: dict[str, Recording] = {
    "gst-qtmux.mov": Recording(
        "GStreamer qtmux, H.264 + AAC, moov at the end",
        _gst_muxed("qtmux", _AAC.format(freq=440)),
        GST,
    ),
    "gst-mp4mux-faststart.mp4": Recording(
        "GStreamer mp4mux faststart=true",
        _gst_muxed("mp4mux faststart=true", _AAC.format(freq=440)),
        GST,
    ),
    "gst-mp4mux-fragmented.mp4": Recording(
        "GStreamer mp4mux fragment-duration=400",
        _gst_muxed("mp4mux fragment-duration=400", _AAC.format(freq=440)),
        GST,
    ),
    "gst-two-aac.mov": Recording(
        "GStreamer qtmux, two AAC tracks",
        _gst_muxed("qtmux", _AAC.format(freq=440), _AAC.format(freq=660)),
        GST,
    ),
    "gst-pcm.mov": Recording("GStreamer qtmux, 16-bit PCM audio", _gst_muxed("qtmux", _PCM), GST),
    "gst-mjpeg.mov": Recording("GStreamer jpegenc + qtmux (Motion JPEG)", _gst_maker(_MJPEG), GST),
    "gst-killed.mov": Recording(
        "GStreamer qtmux robust muxing, killed (SIGKILL) after 2.5 s", gst_killed, GST
    ),
    "ffmpeg-subtitles-chapters.mp4": Recording(
        "ffmpeg: mov_text subtitles (eng), 2 chapters, title; moov at the end",
        with_subtitles_and_chapters,
    ),
    "ffmpeg-timecode-two-pcm.mov": Recording(
        "ffmpeg -f mov: timecode 01:00:00:00, PCM eng + fra, title",
        with_timecode_and_two_languages,
    ),
    "phone-like.mov": Recording(
        "exiftool: Apple keys (make, model, software, date, GPS), rotation 90; moov at end",
        phone_like,
        "exiftool",
    ),
}
