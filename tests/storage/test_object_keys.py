"""Object keys: derived from file names, sanitized, never outside their prefix."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from upload_jobs.errors import ErrorKind, InvalidObjectKey
from upload_jobs.settings import Settings
from upload_jobs.storage.object_keys import (
    MAX_KEY_BYTES,
    key_for_new_job,
    key_template_fields,
    object_key_for,
    sanitize_object_key,
)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("clip.mp4", "videos/clip.mp4"),
        ("/clip.MP4", "videos/clip.MP4"),
        ("/recordings/2026-11-23/merged.mp4", "videos/2026-11-23/merged.mp4"),
        ("/data/recordings/x.mp4s/clip.mp4", "videos/x.mp4s/clip.mp4"),
        (Path("/data/recordings/clip.mov"), "videos/recordings/clip.mov"),
        ("/data/my clip 01.mp4", "videos/data/my clip 01.mp4"),
        ("/data/vidéo 東京.mp4", "videos/data/vidéo 東京.mp4"),
        ("relative/dir/clip.mp4", "videos/dir/clip.mp4"),
        ("/data/old/../2026-11-24/merged.mp4", "videos/2026-11-24/merged.mp4"),
    ],
)
def test_default_key_is_prefix_folder_and_file_name(source: str | Path, expected: str) -> None:
    assert object_key_for(source) == expected


def test_same_named_files_of_different_folders_get_different_default_keys() -> None:
    day1, day2 = (object_key_for(f"/recordings/2026-11-2{day}/merged.mp4") for day in (3, 4))
    assert day1 != day2


def test_default_key_uses_given_prefix() -> None:
    assert object_key_for("/data/clip.mp4", prefix="uploads/2024") == "uploads/2024/data/clip.mp4"
    assert object_key_for("/data/clip.mp4", prefix="", template="{name}") == "clip.mp4"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{name}", "videos/merged.mp4"),
        ("{parent}/{stem}{ext}", "videos/2026-11-23/merged.mp4"),
        ("{job_id}/{name}", "videos/42/merged.mp4"),
        ("{parent}/{stem}-{sha8}{ext}", "videos/2026-11-23/merged-0a1b2c3d.mp4"),
        ("talks/{parent}-{name}", "videos/talks/2026-11-23-merged.mp4"),
    ],
)
def test_key_templates(template: str, expected: str) -> None:
    source = "/recordings/2026-11-23/merged.mp4"
    assert object_key_for(source, template=template, job_id=42, sha8="0a1b2c3d") == expected


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{name", "Invalid key template"),
        ("{folder}/{name}", r"unknown field \{folder\}; the fields are \{name\}"),
        ("{parent}/video.mp4", "every job the same key"),
        ("static.mp4", "every job the same key"),
    ],
)
def test_bad_key_templates_are_refused_with_the_reason(template: str, reason: str) -> None:
    with pytest.raises(InvalidObjectKey, match=reason):
        key_template_fields(template)


def test_a_bad_key_template_is_an_invalid_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPLOAD_JOBS_KEY_TEMPLATE", "{folder}/{name}")
    with pytest.raises(ValidationError, match="unknown field"):
        Settings()


def test_key_for_new_job_by_template_id_or_hash(tmp_path: Path) -> None:
    source = tmp_path / "2026-11-23" / "merged.mp4"
    source.parent.mkdir()
    source.write_bytes(b"recording")
    assert key_for_new_job(source, "videos/", "{name}", explicit_key="a/b.mp4") == "videos/a/b.mp4"
    by_hash = key_for_new_job(source, "videos/", "{stem}-{sha8}{ext}")
    assert by_hash == f"videos/merged-{hashlib.sha256(b'recording').hexdigest()[:8]}.mp4"
    by_id = key_for_new_job(source, "videos/", "{parent}/{job_id}-{name}")
    assert callable(by_id) and by_id(7) == "videos/2026-11-23/7-merged.mp4"
    with pytest.raises(InvalidObjectKey, match="uses \\{sha8\\}"):
        key_for_new_job(tmp_path / "not there.mp4", "videos/", "{sha8}{ext}")


@pytest.mark.parametrize("source", ["/", "", "/data/..", "/data/clip\n.mp4"])
def test_default_key_refuses_paths_naming_no_usable_file(source: str) -> None:
    with pytest.raises(InvalidObjectKey):
        object_key_for(source)


def test_undecodable_file_name_is_refused_not_uploaded_garbled() -> None:
    # os.fsdecode turns undecodable bytes into lone surrogates, which UTF-8 cannot encode.
    with pytest.raises(InvalidObjectKey, match="U\\+DCFF"):
        object_key_for("/data/clip\udcff.mp4")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("clip.mp4", "videos/clip.mp4"),
        ("videos/clip.mp4", "videos/clip.mp4"),
        ("x.mp4s/clip.mp4", "videos/x.mp4s/clip.mp4"),
        ("clip.MP4", "videos/clip.MP4"),
        ("my clip.mp4", "videos/my clip.mp4"),
        ("vidéos/東京 2024.mp4", "videos/vidéos/東京 2024.mp4"),
        ("/abs/path.mp4", "videos/abs/path.mp4"),
        ("///videos//a//b.mp4", "videos/a/b.mp4"),
        ("videos", "videos/videos"),
        ("videosX/a.mp4", "videos/videosX/a.mp4"),
        ("a..b/c...mp4", "videos/a..b/c...mp4"),
        ("..hidden.mp4", "videos/..hidden.mp4"),
    ],
)
def test_sanitized_keys(key: str, expected: str) -> None:
    assert sanitize_object_key(key) == expected


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("../etc/passwd", "'..' path segments"),
        ("videos/../../etc/passwd", "'..' path segments"),
        ("videos/..", "'..' path segments"),
        ("a/./b", "'.' path segments"),
        ("./clip.mp4", "'.' path segments"),
        ("clip\x00.mp4", "U\\+0000"),
        ("clip\n.mp4", "U\\+000A"),
        ("clip\r.mp4", "U\\+000D"),
        ("clip\t.mp4", "U\\+0009"),
        ("clip\x7f.mp4", "U\\+007F"),
        ("clip\x85.mp4", "U\\+0085"),
        ("", "empty"),
        ("/", "empty"),
        ("//", "empty"),
        ("videos/", "names no file"),
        ("some/folder/", "names no file"),
    ],
)
def test_unsafe_keys_are_refused_with_the_reason(key: str, reason: str) -> None:
    with pytest.raises(InvalidObjectKey, match=reason) as caught:
        sanitize_object_key(key)
    assert caught.value.error_kind is ErrorKind.INVALID_KEY


def test_key_exactly_at_the_byte_limit_is_kept() -> None:
    name = "a" * (MAX_KEY_BYTES - len("videos/"))
    assert len(sanitize_object_key(name).encode()) == MAX_KEY_BYTES


def test_key_over_the_byte_limit_is_refused_with_a_short_message() -> None:
    with pytest.raises(InvalidObjectKey, match="1024") as caught:
        sanitize_object_key("a" * 2000 + ".mp4")
    # The message names the key without repeating all 2000 characters.
    assert len(str(caught.value)) < 300
    assert "2004 characters" in str(caught.value)


def test_byte_limit_counts_utf8_bytes_not_characters() -> None:
    name = "é" * 600  # 600 characters, 1200 UTF-8 bytes
    with pytest.raises(InvalidObjectKey, match="UTF-8 bytes"):
        sanitize_object_key(name)


def test_2000_character_file_name_is_refused_for_the_default_key() -> None:
    with pytest.raises(InvalidObjectKey):
        object_key_for("/data/" + "b" * 2000 + ".mp4")


@pytest.mark.parametrize("prefix", ["videos/", "videos", "/videos//", "tenant-1/videos/"])
def test_result_always_stays_under_the_prefix(prefix: str) -> None:
    clean = prefix.strip("/").replace("//", "/") + "/"
    for key in ["clip.mp4", "/clip.mp4", "a/b/clip.mp4", f"{clean}clip.mp4", "//x//y.mp4"]:
        result = sanitize_object_key(key, prefix=prefix)
        assert result.startswith(clean)
        assert result != clean


def test_prefix_itself_is_validated() -> None:
    with pytest.raises(InvalidObjectKey, match="prefix"):
        sanitize_object_key("clip.mp4", prefix="../outside/")
