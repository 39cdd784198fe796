"""The levels above faststart, with each ffmpeg: the ladder chosen from the source, HLS packages
of the source's own tracks or of a ladder (validated, master playlist written from what was
measured), codec strings read from init segments, PSNR/SSIM, re-encoding what browsers cannot
play, and the fallback from each level to the next."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from upload_jobs.errors import OptimizationFailed
from upload_jobs.media import samples
from upload_jobs.media.codec_strings import codec_strings
from upload_jobs.media.content import WouldLoseContent
from upload_jobs.media.ffmpeg_process import RemuxFailed
from upload_jobs.media.hls import package_hls
from upload_jobs.media.ladder import NoLadder, choose_ladder
from upload_jobs.media.mp4 import read_layout
from upload_jobs.media.playlists import (
    PlaylistInvalid,
    parse_master_playlist,
    parse_media_playlist,
)
from upload_jobs.media.quality import measure_quality
from upload_jobs.media.remux import resolve_ffmpeg
from upload_jobs.media.streaming import StreamingOptions, StreamingPath, optimize_for_streaming
from upload_jobs.settings import Preset


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.mark.parametrize(
    ("size", "kbps", "expected"),
    [
        ((1920, 1080), 8000, [(1080, 5000), (720, 2800), (480, 1400), (360, 800)]),
        ((1280, 720), 4000, [(720, 2800), (480, 1400), (360, 800)]),
        ((854, 480), 3000, [(480, 1400), (360, 800)]),
        # Few bits: every rung scaled down alike, none below 200 kbit/s.
        ((1920, 1080), 1000, [(1080, 872), (720, 488), (480, 244)]),
        # Portrait counts by its short side; between rungs the source's own size heads it.
        ((1080, 1920), 8000, [(1080, 5000), (720, 2800), (480, 1400), (360, 800)]),
        ((960, 540), 3000, [(540, 1575), (480, 1400), (360, 800)]),
        ((400, 300), 500, [(300, 372)]),
        ((3840, 2160), 30000, [(1080, 5000), (720, 2800), (480, 1400), (360, 800)]),
    ],
)
def test_the_ladder_never_exceeds_the_source(
    size: tuple[int, int], kbps: int, expected: list[tuple[int, int]]
) -> None:
    ladder = choose_ladder(*size, kbps)
    assert [(min(r.width, r.height), r.video_kbps) for r in ladder] == expected
    for rung in ladder:
        assert rung.width <= size[0] and rung.height <= size[1]
        assert rung.width % 2 == 0 and rung.height % 2 == 0
        assert rung.width / rung.height == pytest.approx(size[0] / size[1], rel=0.01)


def test_no_picture_no_ladder() -> None:
    with pytest.raises(NoLadder):
        choose_ladder(0, 0, 1000)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:4,\na.m4s\n', "ENDLIST"),
        ("#EXTM3U\n#EXTINF:4,\na.m4s\n#EXT-X-ENDLIST\n", "EXT-X-MAP"),
        ('#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:4,\n../a.m4s\n#EXT-X-ENDLIST', "beside"),
        ('#EXTM3U\n#EXT-X-MAP:URI="http://x/i.mp4"\n#EXTINF:4,\na\n#EXT-X-ENDLIST', "beside"),
        ('#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\na.m4s\n#EXT-X-ENDLIST\n', "EXTINF"),
        ("not a playlist", "EXTM3U"),
    ],
)
def test_a_media_playlist_that_is_not_a_finished_local_vod_one_is_refused(
    text: str, problem: str
) -> None:
    with pytest.raises(PlaylistInvalid, match=problem):
        parse_media_playlist(text)


def test_quoted_attributes_keep_their_commas() -> None:
    [(attributes, uri)] = parse_master_playlist(
        '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=5,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=2x2\n'
        "v/index.m3u8\n"
    )
    assert attributes == {"BANDWIDTH": "5", "CODECS": "avc1.64001f,mp4a.40.2", "RESOLUTION": "2x2"}
    assert uri == "v/index.m3u8"


def test_a_copied_package_is_the_sources_own_samples_with_codecs_from_its_init(
    ffmpeg: str, tmp_path: Path, work_dir: Path
) -> None:
    source = samples.make_moov_at_end_mp4(tmp_path / "in.mp4", ffmpeg=ffmpeg, seconds=3)
    before = source.read_bytes()

    package = package_hls(source, read_layout(source), work_dir, ffmpeg, None, segment_seconds=1)

    [rendition] = package.renditions
    assert (rendition.name, rendition.width, rendition.height) == ("source", 320, 240)
    assert not rendition.reencoded and len(rendition.playlist.segments) >= 3
    assert package.files[-1] == "master.m3u8" and len(package.files) == len(set(package.files))
    assert rendition.playlist.duration_seconds == pytest.approx(3, abs=0.1)
    init = package.directory / "source" / rendition.playlist.init_uri
    codecs = codec_strings(init.read_bytes())
    assert codecs[0].startswith("avc1.") and codecs[1] == "mp4a.40.2"
    master = (package.directory / "master.m3u8").read_text()
    [(attributes, uri)] = parse_master_playlist(master)
    assert uri == "source/index.m3u8" and attributes["CODECS"] == ",".join(codecs)
    assert int(attributes["BANDWIDTH"]) >= int(attributes["AVERAGE-BANDWIDTH"]) > 0
    assert package.startup_bytes < package.total_bytes
    assert source.read_bytes() == before


def test_a_ladder_is_encoded_on_one_keyframe_grid_and_measured(
    ffmpeg: str, tmp_path: Path, work_dir: Path
) -> None:
    source = samples.make_faststart_mp4(
        tmp_path / "in.mp4", ffmpeg=ffmpeg, seconds=3, size="854x480"
    )
    ladder = choose_ladder(854, 480, 3000)

    package = package_hls(source, read_layout(source), work_dir, ffmpeg, ladder, segment_seconds=1)

    assert [(r.name, r.width, r.height) for r in package.renditions] == [
        ("480p", 854, 480), ("360p", 640, 360)
    ]  # fmt: skip
    cuts = [[s.seconds for s in r.playlist.segments] for r in package.renditions]
    assert cuts[0] == cuts[1], "every rendition is cut at the same instants"
    for rendition in package.renditions:
        quality = measure_quality(
            ffmpeg, source, package.directory / rendition.playlist_path, rendition.width,
            rendition.height, sample_seconds=60,
        )  # fmt: skip
        assert quality is not None and quality.frames == 75
        assert 30 < quality.psnr < 100 and 0.9 < quality.ssim < 1


def test_identical_pictures_measure_as_lossless(ffmpeg: str, tmp_path: Path) -> None:
    source = samples.make_faststart_mp4(tmp_path / "in.mp4", ffmpeg=ffmpeg, seconds=1)
    quality = measure_quality(ffmpeg, source, source, 320, 240, sample_seconds=60)
    assert quality is not None and (quality.psnr, quality.ssim) == (100.0, 1.0)
    assert (
        measure_quality(ffmpeg, source, tmp_path / "missing.mp4", 320, 240, sample_seconds=5)
        is None
    )


def test_a_failed_package_leaves_no_folder(tmp_path: Path, work_dir: Path) -> None:
    source = samples.make_moov_at_end_mp4(tmp_path / "in.mp4", ffmpeg=samples_ffmpeg())
    broken = tmp_path / "ffmpeg"
    broken.write_text('#!/bin/sh\nmkdir -p "$(dirname "${@: -1}")" 2>/dev/null; exit 3\n')
    broken.chmod(0o755)
    with pytest.raises(RemuxFailed):
        package_hls(source, read_layout(source), work_dir, str(broken), None)
    assert list(work_dir.iterdir()) == []


def test_hls_cannot_carry_two_audio_tracks_as_they_are(
    ffmpeg: str, tmp_path: Path, work_dir: Path
) -> None:
    one = samples.make_moov_at_end_mp4(tmp_path / "one.mp4", ffmpeg=ffmpeg)
    two = tmp_path / "two.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-i", str(one), "-map", "0:v", "-map", "0:a", "-map",
                    "0:a", "-c", "copy", str(two)], check=True)  # fmt: skip
    with pytest.raises(WouldLoseContent, match="2 audio"):
        package_hls(two, read_layout(two), work_dir, ffmpeg, None)


def test_video_browsers_do_not_decode_is_reencoded_to_h264(
    ffmpeg: str, tmp_path: Path, work_dir: Path
) -> None:
    source = samples.make_mpeg4_part2_mp4(tmp_path / "mpeg4.mp4", ffmpeg=ffmpeg)

    result = optimize_for_streaming(source, work_dir, Preset.FASTSTART, ffmpeg)

    assert result.path is StreamingPath.TRANSCODED
    assert (
        result.reason
        == "video track 1 is 'mp4v', which browsers do not play: re-encoded to H.264/AAC"
    )
    layout = read_layout(result.body.path)
    assert layout.is_faststart and [t.fourcc for t in layout.video_tracks] == ["avc1"]
    [rendition] = result.renditions
    assert rendition.reencoded and rendition.ssim is not None and rendition.ssim > 0.9


def test_hls_of_hevc_is_one_h264_rendition_at_the_sources_size(
    ffmpeg: str, tmp_path: Path, work_dir: Path
) -> None:
    source = samples.make_hevc_mp4(tmp_path / "hevc.mp4", ffmpeg=ffmpeg, seconds=2)

    result = optimize_for_streaming(source, work_dir, Preset.HLS, ffmpeg)

    assert result.path is StreamingPath.HLS_PACKAGED and result.package is not None
    assert [(r.width, r.height, r.reencoded) for r in result.renditions] == [(320, 240, True)]
    assert "'hev1', not H.264: re-encoded to H.264/AAC" in str(result.reason)
    assert result.declined == ()


def test_with_reencoding_off_hls_of_hevc_falls_back_to_faststart_saying_why(
    ffmpeg: str, tmp_path: Path, work_dir: Path
) -> None:
    source = samples.make_hevc_mp4(tmp_path / "hevc.mp4", ffmpeg=ffmpeg, seconds=1)
    options = StreamingOptions(transcode_unplayable=False)

    result = optimize_for_streaming(source, work_dir, Preset.HLS, ffmpeg, options=options)

    assert result.path is StreamingPath.FFMPEG_REMUX  # hev1 tagged hvc1, faststart
    [declined] = result.declined
    assert (declined.preset, declined.kind) == ("hls", "unsupported_codec")
    assert "UPLOAD_JOBS_TRANSCODE_UNPLAYABLE" in declined.reason


def test_when_every_level_fails_the_last_failure_lists_them_all(
    tmp_path: Path, work_dir: Path
) -> None:
    source = samples.make_moov_at_end_mp4(tmp_path / "in.mp4", ffmpeg=samples_ffmpeg())
    broken = tmp_path / "ffmpeg"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    options = StreamingOptions(in_process=False)

    with pytest.raises(OptimizationFailed) as failed:
        optimize_for_streaming(source, work_dir, Preset.ABR, str(broken), options=options)

    assert [level.preset for level in failed.value.declined] == ["abr", "hls", "faststart"]  # type: ignore[attr-defined]
    assert list(work_dir.iterdir()) == []


def samples_ffmpeg() -> str:
    return resolve_ffmpeg()
