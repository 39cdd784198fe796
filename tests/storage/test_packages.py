"""Where a job's HLS objects go and how each is served (plain functions; the uploads themselves
are tested through the flow in tests/flows/test_presets.py, on both S3 servers)."""

from __future__ import annotations

import pytest

from upload_jobs.storage.packages import content_type_of, package_prefix


@pytest.mark.parametrize(
    ("key", "prefix"),
    [
        ("videos/2026/talk.mp4", "videos/2026/talk/"),
        ("videos/talk.final.MOV", "videos/talk.final/"),
        ("videos/no-extension", "videos/no-extension/"),
        ("videos/.hidden.mp4", "videos/.hidden/"),
    ],
)
def test_a_package_goes_under_the_key_without_its_extension(key: str, prefix: str) -> None:
    assert package_prefix(key) == prefix


def test_playlists_and_segments_are_served_as_what_they_are() -> None:
    assert content_type_of("720p/index.m3u8") == "application/vnd.apple.mpegurl"
    assert content_type_of("master.m3u8") == "application/vnd.apple.mpegurl"
    assert content_type_of("720p/init.mp4") == content_type_of("720p/seg00001.m4s") == "video/mp4"
