"""Presets through the flow, on both S3 servers: `abr` uploads a ladder chosen from the source
as HLS (master playlist last, every object the job's), `hls` the source's own tracks, each level
falls back to the next with its reason recorded, a job re-run with another preset replaces its
own objects and removes what no longer belongs to it, and a resumed upload sends only what the
bucket does not hold already."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col

from flows.retry_upload import retry_upload_job
from tests.support.command_line import invoke
from tests.support.digitalocean_api import DigitalOceanApi
from tests.support.s3_backends import S3Backend
from tests.support.s3_fault_proxy import S3FaultProxy
from upload_jobs.cli.presenters import streaming_as_dict
from upload_jobs.jobs.database import get_engine
from upload_jobs.jobs.models import JobStatus, UploadJob
from upload_jobs.jobs.reconcile import ReconcileScope, reconcile_jobs
from upload_jobs.jobs.store import JobStore
from upload_jobs.media import samples
from upload_jobs.media.mp4 import read_layout
from upload_jobs.media.playlists import parse_master_playlist
from upload_jobs.media.remux import resolve_ffmpeg
from upload_jobs.settings import Settings, get_settings
from upload_jobs.storage.objects import find_existing_object
from upload_jobs.storage.spaces import make_s3_client, public_url

CDN_TOKEN = "dop_v1_presets-cdn-purge-0123456789"
CDN_ENDPOINT = "7e3c5d9f-8a2b-4c4d-8e8f-1b2c3d4e5f60"

pytestmark = [
    pytest.mark.flow,
    pytest.mark.usefixtures("prefect_server"),
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


@pytest.fixture(autouse=True)
def work_dir_left_empty(settings: Settings) -> Iterator[None]:
    """No package folder or temp file outlives its run."""
    yield
    left = list(Path(settings.work_dir).rglob("*")) if settings.work_dir.exists() else []
    assert left == [], f"temp files left behind: {left}"


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    folder = tmp_path / "recordings"
    folder.mkdir()
    return folder


def add_job(settings: Settings, source: Path, preset: str | None, key: str) -> int:
    job = JobStore(settings.database_url).add_job(
        str(source), key, JobStatus.FAILED, requested_preset=preset
    )
    assert job.id is not None
    return job.id


def run(settings: Settings, job_id: int) -> UploadJob:
    retry_upload_job(job_id, return_state=True)
    return JobStore(settings.database_url).get_job(job_id)


def latest_streaming(settings: Settings, job_id: int) -> dict[str, Any]:
    attempts = JobStore(settings.database_url).list_attempts(job_id)
    return streaming_as_dict(attempts[-1])


def keys_under(settings: Settings, prefix: str) -> list[str]:
    listed = make_s3_client(settings).list_objects_v2(Bucket=settings.bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def reopen(settings: Settings, job_id: int) -> None:
    with get_engine(settings.database_url).begin() as connection:
        connection.execute(
            update(UploadJob).where(col(UploadJob.id) == job_id).values(status=JobStatus.FAILED)
        )


def test_abr_uploads_a_ladder_from_the_source_as_hls_master_last(
    settings: Settings, s3_server: S3Backend, recordings: Path
) -> None:
    source = samples.make_moov_at_end_mp4(
        recordings / "talk.mp4", ffmpeg=resolve_ffmpeg(), seconds=3, size="854x480"
    )
    job_id = add_job(settings, source, "abr", "videos/day/talk.mp4")

    job = run(settings, job_id)

    assert job.status == JobStatus.COMPLETED, job.last_error
    assert job.public_url is not None and job.public_url.endswith("/videos/day/talk/master.m3u8")
    assert job.optimized_for_streaming and job.optimization_preset == "abr"
    streaming = latest_streaming(settings, job_id)
    assert streaming["path"] == "abr_ladder" and streaming["declined"] == []
    rungs = [(r["name"], r["width"], r["height"]) for r in streaming["renditions"]]
    assert rungs == [("480p", 854, 480), ("360p", 640, 360)]
    for rendition in streaming["renditions"]:
        assert rendition["reencoded"] and rendition["bitrate"] > 0
        assert 25 < rendition["psnr"] < 100 and 0.8 < rendition["ssim"] <= 1
    keys = keys_under(settings, "videos/day/talk/")
    assert streaming["object_count"] == len(keys) and "videos/day/talk.mp4" not in keys
    client = make_s3_client(settings)
    for key in keys:  # every object names its job, served as what it is
        stored = find_existing_object(client, settings.bucket, key)
        assert stored is not None and stored.owner == str(job_id)
        expected = "application/vnd.apple.mpegurl" if key.endswith(".m3u8") else "video/mp4"
        assert stored.content_type == expected
    master = client.get_object(Bucket=settings.bucket, Key="videos/day/talk/master.m3u8")
    variants = parse_master_playlist(master["Body"].read().decode())
    # Lowest first: a player starting with the first variant shows a frame soonest.
    assert [v[1] for v in variants] == ["360p/index.m3u8", "480p/index.m3u8"]
    for attributes, _ in variants:
        assert {"BANDWIDTH", "AVERAGE-BANDWIDTH", "RESOLUTION", "CODECS"} <= set(attributes)
        assert attributes["CODECS"].startswith("avc1.") and "mp4a.40.2" in attributes["CODECS"]
    assert int(variants[0][0]["BANDWIDTH"]) < int(variants[1][0]["BANDWIDTH"])


def test_the_master_playlist_goes_up_last_and_a_resumed_upload_sends_only_what_is_missing(
    settings: Settings, s3_server: S3Backend, recordings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = samples.make_moov_at_end_mp4(
        recordings / "lesson.mp4", ffmpeg=resolve_ffmpeg(), seconds=3
    )
    job_id = add_job(settings, source, "hls", "videos/lesson.mp4")
    with S3FaultProxy(s3_server.endpoint_url) as proxy:
        monkeypatch.setenv("UPLOAD_JOBS_ENDPOINT_URL", proxy.endpoint_url)
        get_settings.cache_clear()
        job = run(settings, job_id)
        assert job.status == JobStatus.COMPLETED, job.last_error
        puts = [r.key for r in proxy.requests if r.method == "PUT"]
        assert len(puts) > 3 and puts[-1] == "videos/lesson/master.m3u8"
        streaming = latest_streaming(settings, job_id)
        assert streaming["path"] == "hls_packaged"
        assert [(r["name"], r["reencoded"], r["psnr"]) for r in streaming["renditions"]] == [
            ("source", False, None)
        ]
        # The run dies after every segment went up but before the master: the next sends it only.
        client = make_s3_client(get_settings())
        client.delete_object(Bucket=settings.bucket, Key="videos/lesson/master.m3u8")
        reopen(settings, job_id)
        seen = len(proxy.requests)
        job = run(settings, job_id)
        assert job.status == JobStatus.COMPLETED, job.last_error
        puts = [r.key for r in proxy.requests[seen:] if r.method == "PUT"]
        assert puts == ["videos/lesson/master.m3u8"]
    get_settings.cache_clear()


def test_another_preset_replaces_the_jobs_own_objects_and_removes_the_rest(
    settings: Settings, s3_server: S3Backend, recordings: Path
) -> None:
    source = samples.make_moov_at_end_mp4(recordings / "demo.mp4", ffmpeg=resolve_ffmpeg())
    job_id = add_job(settings, source, None, "videos/demo.mp4")
    store = JobStore(settings.database_url)
    assert run(settings, job_id).public_url.endswith("/videos/demo.mp4")  # type: ignore[union-attr]
    # Not this job's: under its prefix, but never touched.
    client = make_s3_client(settings)
    client.put_object(Bucket=settings.bucket, Key="videos/demo/notes.txt", Body=b"mine")

    store.request_preset(job_id, "hls")
    job = run(settings, job_id)
    assert job.status == JobStatus.COMPLETED and job.public_url.endswith("demo/master.m3u8")  # type: ignore[union-attr]
    assert keys_under(settings, "videos/demo.mp4") == []  # the MP4 of its faststart run: gone
    hls_keys = keys_under(settings, "videos/demo/")
    assert "videos/demo/notes.txt" in hls_keys and len(hls_keys) > 3

    store.request_preset(job_id, "faststart")
    job = run(settings, job_id)
    assert job.status == JobStatus.COMPLETED and job.public_url.endswith("/videos/demo.mp4")  # type: ignore[union-attr]
    assert keys_under(settings, "videos/demo/") == ["videos/demo/notes.txt"]
    assert keys_under(settings, "videos/demo.mp4") == ["videos/demo.mp4"]


def test_another_jobs_playlist_under_the_prefix_is_never_overwritten(
    settings: Settings, s3_server: S3Backend, recordings: Path
) -> None:
    ffmpeg = resolve_ffmpeg()
    for folder in ("a", "b"):
        (recordings / folder).mkdir()
    first = samples.make_moov_at_end_mp4(recordings / "a" / "same.mp4", ffmpeg=ffmpeg)
    second = samples.make_moov_at_end_mp4(recordings / "b" / "same.mov", ffmpeg=ffmpeg)
    first_id = add_job(settings, first, "hls", "videos/same.mp4")
    second_id = add_job(settings, second, "hls", "videos/same.mov")
    assert run(settings, first_id).status == JobStatus.COMPLETED
    master_before = make_s3_client(settings).head_object(
        Bucket=settings.bucket, Key="videos/same/master.m3u8"
    )

    job = run(settings, second_id)

    assert job.status == JobStatus.FAILED and job.error_kind == "key_conflict"
    assert f"upload job {first_id}'s video" in (job.last_error or "")
    master_after = make_s3_client(settings).head_object(
        Bucket=settings.bucket, Key="videos/same/master.m3u8"
    )
    assert master_after["ETag"] == master_before["ETag"]


@pytest.mark.moto_only  # the levels are media's business; S3 only receives the MP4
def test_each_level_falls_back_to_the_next_with_its_reason(
    settings: Settings, s3_server: S3Backend, recordings: Path
) -> None:
    # Two audio tracks: no HLS variant carries both, so abr and hls decline; faststart keeps them.
    ffmpeg = resolve_ffmpeg()
    one = samples.make_moov_at_end_mp4(recordings / "one.mp4", ffmpeg=ffmpeg)
    source = recordings / "two-languages.mp4"
    two_audio = ["-map", "0:v", "-map", "0:a", "-map", "0:a", "-c", "copy", "-f", "mp4"]
    subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-i", str(one), *two_audio, str(source)],
                   check=True)  # fmt: skip
    job_id = add_job(settings, source, "abr", "videos/two-languages.mp4")

    job = run(settings, job_id)

    assert job.status == JobStatus.COMPLETED and job.public_url.endswith("two-languages.mp4")  # type: ignore[union-attr]
    streaming = latest_streaming(settings, job_id)
    assert streaming["path"] == "moved_in_process"
    declined = streaming["declined"]
    assert [(d["preset"], d["kind"]) for d in declined] == [
        ("abr", "would_lose_content"), ("hls", "would_lose_content")
    ]  # fmt: skip
    assert all("2 audio" in d["reason"] for d in declined)
    assert len(read_layout(source).audio_tracks) == 2
    assert json.dumps(streaming)  # JSON as `show --json` prints it


@pytest.mark.moto_only  # re-encoding is media's business; S3 only receives the MP4
def test_an_hevc_recording_goes_up_playable_as_h264(
    settings: Settings, s3_server: S3Backend, recordings: Path
) -> None:
    source = samples.make_hevc_mp4(recordings / "phone.mp4", ffmpeg=resolve_ffmpeg())
    job_id = add_job(settings, source, "faststart", "videos/phone.mp4")

    job = run(settings, job_id)

    assert job.status == JobStatus.COMPLETED, job.last_error
    streaming = latest_streaming(settings, job_id)
    assert streaming["path"] == "transcoded"
    assert "'hev1', which browsers do not play" in streaming["reason"]
    (rendition,) = streaming["renditions"]
    assert (rendition["width"], rendition["height"]) == (320, 240)
    assert rendition["psnr"] > 30 and rendition["ssim"] > 0.9
    uploaded = recordings / "uploaded.mp4"
    make_s3_client(settings).download_file(settings.bucket, "videos/phone.mp4", str(uploaded))
    layout = read_layout(uploaded)
    assert layout.is_faststart
    assert [t.fourcc for t in layout.video_tracks] == ["avc1"]
    assert [t.fourcc for t in layout.audio_tracks] == ["mp4a"]


def test_reconcile_knows_an_hls_job_by_its_master_playlist(
    settings: Settings, s3_server: S3Backend, recordings: Path
) -> None:
    source = samples.make_moov_at_end_mp4(recordings / "talk.mp4", ffmpeg=resolve_ffmpeg())
    job_id = add_job(settings, source, "hls", "videos/talk.mp4")
    completed = run(settings, job_id)
    assert completed.status == JobStatus.COMPLETED

    def reconcile() -> Any:
        return reconcile_jobs(
            settings.database_url, make_s3_client(settings), settings.bucket,
            lambda key: public_url(settings, key), scope=ReconcileScope.ALL,
        )  # fmt: skip

    assert reconcile().in_agreement == 1  # not "videos/talk.mp4 is not in the bucket"
    # The run died after its upload: reconcile finds the master and completes the job.
    with get_engine(settings.database_url).begin() as connection:
        connection.execute(
            update(UploadJob).where(col(UploadJob.id) == job_id)
            .values(status=JobStatus.FAILED, public_url=None)
        )  # fmt: skip
    assert reconcile().completed == [job_id]
    assert JobStore(settings.database_url).get_job(job_id).public_url == completed.public_url
    make_s3_client(settings).delete_object(Bucket=settings.bucket, Key="videos/talk/master.m3u8")
    report = reconcile()
    assert report.reopened == [job_id]
    assert "videos/talk/master.m3u8 is not in the bucket" in report.changes[0].reason


@pytest.mark.moto_only
def test_the_cli_sets_a_jobs_preset_and_shows_its_renditions(
    settings: Settings, s3_server: S3Backend, recordings: Path
) -> None:
    source = samples.make_moov_at_end_mp4(recordings / "class.mp4", ffmpeg=resolve_ffmpeg())
    code, output = invoke("add", str(source), "--preset", "bogus")
    assert code == 2 and "'bogus' is not one of" in output and "abr" in output
    code, output = invoke("add", str(source), "--preset", "ABR", "--json")
    assert code == 0
    job = json.loads(output)
    assert job["requested_preset"] == "abr"

    code, output = invoke("retry", str(job["id"]), "--preset", "hls", "--json")

    assert code == 0, output
    assert json.loads(output)["job"]["public_url"].endswith("/class/master.m3u8")
    code, output = invoke("show", str(job["id"]), "--json")
    shown = json.loads(output)
    assert shown["requested_preset"] == "hls" and shown["optimization_preset"] == "hls"
    assert shown["streaming"]["path"] == "hls_packaged"
    [rendition] = shown["streaming"]["renditions"]
    assert {"width", "height", "bitrate", "psnr", "ssim"} <= set(rendition)
    code, output = invoke("show", str(job["id"]))
    assert code == 0 and "source 320x240" in output and "master playlist last" in output
    code, output = invoke("stats", "--json")
    assert [r["rendition"] for r in json.loads(output)["renditions"]] == ["source"]
    code, output = invoke("stats")
    assert code == 0 and "Renditions (medians)" in output


@pytest.mark.moto_only
def test_a_replaced_package_is_purged_from_the_cdn_by_its_prefix(
    settings: Settings, s3_server: S3Backend, recordings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = samples.make_moov_at_end_mp4(recordings / "news.mp4", ffmpeg=resolve_ffmpeg())
    job_id = add_job(settings, source, "hls", "videos/news.mp4")
    with DigitalOceanApi(CDN_TOKEN, {CDN_ENDPOINT}) as cdn:
        monkeypatch.setenv("UPLOAD_JOBS_DIGITALOCEAN_TOKEN", CDN_TOKEN)
        monkeypatch.setenv("UPLOAD_JOBS_CDN_ENDPOINT_ID", CDN_ENDPOINT)
        monkeypatch.setenv("UPLOAD_JOBS_DIGITALOCEAN_API_URL", cdn.url)
        get_settings.cache_clear()
        assert run(settings, job_id).status == JobStatus.COMPLETED
        assert cdn.requests == [], "a first upload replaces nothing"
        # An older take of the job's own master playlist (reconcile reopened the job).
        make_s3_client(settings).put_object(
            Bucket=settings.bucket, Key="videos/news/master.m3u8", Body=b"#EXTM3U\n",
            Metadata={"upload-job-id": str(job_id)},
        )  # fmt: skip
        reopen(settings, job_id)
        assert run(settings, job_id).status == JobStatus.COMPLETED
        [purge] = cdn.purges()
    get_settings.cache_clear()
    assert purge.body == {"files": ["videos/news/*"]}
    assert JobStore(settings.database_url).list_attempts(job_id)[-1].cdn_purge == "purged"
