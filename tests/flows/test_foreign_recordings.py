"""Recordings from other muxers and tools, each through the flow (moto, SQLite): the upload holds
every track, packet and tag of its source, or the original goes up with a reason naming what
the optimization would have lost. The in-process move runs for what only needs moving; with it
turned off, ffmpeg's remux must keep the same, with each ffmpeg."""

from __future__ import annotations

import hashlib
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from tests.conftest import FFMPEG_BINARIES
from tests.flows.test_retry_flow import add_failed_job, download, media_and_s3_only, run
from tests.support.foreign_recordings import CORPUS, require
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.media.content import CONTAINER_TAGS, parse_ffmetadata
from upload_jobs.media.mp4 import read_layout
from upload_jobs.settings import Settings, get_settings

pytestmark = [
    pytest.mark.flow,
    pytest.mark.usefixtures("prefect_server"),
    pytest.mark.moto_only,
    media_and_s3_only,
]

PATH_FFMPEG = sorted(FFMPEG_BINARIES)[-1]  # "path-5.1.x" sorts after "bundled-9.x"
# In process with PATH's ffmpeg (it runs only where a conversion is needed); the remux with each.
MODES = [("in-process", PATH_FFMPEG)] + [("ffmpeg-only", name) for name in sorted(FFMPEG_BINARIES)]


def packets(ffmpeg: str, path: Path) -> dict[int, list[tuple[Fraction, int, str]]]:
    """Each video, audio and subtitle stream's packets: (time in seconds, size, md5)."""
    listing = subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-i", f"file:{path}", "-map", "0:v", "-map", "0:a?",
         "-map", "0:s?", "-c", "copy", "-f", "framemd5", "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    time_bases: dict[int, Fraction] = {}
    streams: dict[int, list[tuple[Fraction, int, str]]] = {}
    for line in listing.splitlines():
        if line.startswith("#tb "):
            index, base = line[4:].split(":")
            time_bases[int(index)] = Fraction(base.strip())
        elif line and not line.startswith("#"):
            index, _, pts, _, size, md5 = (field.strip() for field in line.split(",")[:6])
            stream = int(index)
            streams.setdefault(stream, []).append((int(pts) * time_bases[stream], int(size), md5))
    return streams


def tags_and_chapters(ffmpeg: str, path: Path) -> tuple[dict[str, str], tuple[str, ...]]:
    listing = subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-i", f"file:{path}", "-f", "ffmetadata", "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    tags, chapters = parse_ffmetadata(listing)
    return {k: v for k, v in tags.items() if k not in CONTAINER_TAGS}, chapters


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("mode", "binary"), MODES)
@pytest.mark.parametrize("name", list(CORPUS))
def test_a_recording_goes_up_whole_or_its_original_goes_up_saying_what_would_be_lost(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    mode: str,
    binary: str,
) -> None:
    recording = CORPUS[name]
    require(recording.tool)
    ffmpeg = FFMPEG_BINARIES[binary]
    source = recording.make(tmp_path / name, ffmpeg)
    monkeypatch.setenv("UPLOAD_JOBS_FFMPEG", ffmpeg)
    monkeypatch.setenv("UPLOAD_JOBS_FASTSTART_IN_PROCESS", str(mode == "in-process").lower())
    get_settings.cache_clear()
    digest = sha256(source)

    job, completed = run(add_failed_job(get_settings(), source))

    assert completed and job.status == JobStatus.COMPLETED, job.last_error
    [attempt] = JobStore(settings.database_url).list_attempts(job.id or 0)
    uploaded = download(settings, job.object_key, tmp_path / "uploaded.bin")
    assert sha256(source) == digest, "the source is never changed"
    before, after = read_layout(source), read_layout(uploaded)
    path = attempt.optimization_path
    print(f"\n| {name} | {recording.made_by} | {mode} {binary} | {path} "
          f"| {len(before.tracks)} -> {len(after.tracks)} | {attempt.optimization_path_reason or attempt.fallback_reason or ''} |")  # fmt: skip  # noqa: E501
    if path == "transcoded":
        # Video browsers do not decode (Motion JPEG) is re-encoded to H.264, whatever the mode:
        # every track kept, the same length, its quality measured against the source.
        assert [t.fourcc for t in after.video_tracks] == ["avc1"] * len(before.video_tracks)
        assert len(after.tracks) == len(before.tracks) and after.is_faststart
        assert after.duration_seconds == pytest.approx(before.duration_seconds, abs=0.1)
        assert (attempt.renditions or [{}])[0].get("ssim", 0) > 0.9
        return
    assert job.optimized_for_streaming and after.is_faststart
    assert [t.handler for t in after.tracks if t.handler in ("vide", "soun")] == [
        t.handler for t in before.tracks if t.handler in ("vide", "soun")
    ]
    assert len(after.tracks) == len(before.tracks)
    converted = {i for i, t in enumerate(before.audio_tracks) if t.fourcc not in ("mp4a",)}
    old, new = packets(ffmpeg, source), packets(ffmpeg, uploaded)
    assert sorted(old) == sorted(new)
    first_audio = len(before.video_tracks)
    for stream, listing in old.items():
        if stream - first_audio in converted:
            continue  # PCM became AAC: other packets, the same length (checked below)
        assert new[stream] == listing, f"stream {stream}'s packets differ"
    old_tags, old_chapters = tags_and_chapters(ffmpeg, source)
    new_tags, new_chapters = tags_and_chapters(ffmpeg, uploaded)
    assert old_tags.items() <= new_tags.items() and old_chapters == new_chapters
    assert after.duration_seconds == pytest.approx(before.duration_seconds, abs=0.1)


def test_a_matroska_recording_is_refused_by_name(settings: Settings, tmp_path: Path) -> None:
    source = tmp_path / "recording.mp4"  # a misleading name: the bytes say what it is
    subprocess.run(
        [FFMPEG_BINARIES[PATH_FFMPEG], "-nostdin", "-v", "error", "-f", "lavfi", "-i",
         "testsrc2=size=160x120:rate=25:duration=1", "-c:v", "libx264", "-preset", "ultrafast",
         "-f", "matroska", f"file:{source}"],
        check=True,
    )  # fmt: skip
    job, _ = run(add_failed_job(settings, source))
    assert (job.status, job.error_kind) == (JobStatus.FAILED, "source_not_video")
    assert f"Original file is a Matroska (or WebM) file, not MP4 or QuickTime: {source}" == (
        job.last_error
    )
