"""Source checks and attempt folders: clear errors, and the source is never deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.recordings import write_unfinished_recording
from upload_jobs.errors import (
    ErrorKind,
    SourceEmpty,
    SourceMissing,
    SourceNotVideo,
    SourceUnreadable,
    error_kind_for,
)
from upload_jobs.jobs.files import (
    attempt_work_dir,
    check_source_file,
    format_megabytes,
    remove_attempt_work_dir,
)


def test_missing_source_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "gone é.mp4"
    with pytest.raises(SourceMissing) as caught:
        check_source_file(missing)
    assert str(caught.value) == f"Original video file not found: {missing}"
    assert error_kind_for(caught.value) == ErrorKind.SOURCE_MISSING


def test_empty_source(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(SourceEmpty, match="empty"):
        check_source_file(empty)


def test_folder_instead_of_file(tmp_path: Path) -> None:
    folder = tmp_path / "x.mp4"
    folder.mkdir()
    with pytest.raises(SourceUnreadable, match="not a regular file"):
        check_source_file(folder)


def test_a_nul_in_the_path_is_unreadable_not_a_crash() -> None:
    with pytest.raises(SourceUnreadable, match="contains a NUL character"):
        check_source_file("/videos/a\x00b.mp4")


def test_present_source_returns_size(tmp_path: Path) -> None:
    video = write_unfinished_recording(tmp_path / "clip.MP4", 1500)
    assert check_source_file(str(video)) == 1500


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"\0" * 1500, "is not MP4 or QuickTime (its first bytes match no video format"),
        (b"<html>not a video</html>", "is a text file, not MP4 or QuickTime"),
        (b"\x1aE\xdf\xa3 matroska", "is a Matroska (or WebM) file, not MP4 or QuickTime"),
        (b"RIFF\0\0\0\0AVI LIST", "is an AVI file, not MP4 or QuickTime"),
        ((b"\x47" + b"\xff" * 187) * 3, "is an MPEG transport stream (TS) file, not MP4"),
        (b"ftyp", "is a text file, not MP4 or QuickTime"),
    ],
    ids=["zeros", "html", "matroska", "avi", "ts", "too-short"],
)
def test_bytes_that_are_no_mp4_are_refused_by_name(
    tmp_path: Path, content: bytes, said: str
) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(content)
    with pytest.raises(SourceNotVideo) as refused:
        check_source_file(video)
    message = str(refused.value)
    assert said in message and message.endswith("/clip.mp4")
    assert "\\x" not in message, "no raw bytes"
    assert video.read_bytes() == content


def test_megabytes_format() -> None:
    assert format_megabytes(5 * 1024 * 1024 + 512 * 1024) == "5.50 MB"


def test_attempt_folders_are_unique_and_removed(tmp_path: Path) -> None:
    first = attempt_work_dir(tmp_path / "work", 7, 1)
    second = attempt_work_dir(tmp_path / "work", 7, 1)
    assert first != second and first.parent == second.parent == tmp_path / "work"
    first.mkdir(parents=True)
    (first / "out.mp4").write_bytes(b"x")
    assert remove_attempt_work_dir(first, tmp_path / "source.mp4")
    assert not first.exists()
    assert not remove_attempt_work_dir(first, tmp_path / "source.mp4")


def test_cleanup_never_deletes_the_source(tmp_path: Path) -> None:
    folder = attempt_work_dir(tmp_path / "work", 1, 1)
    folder.mkdir(parents=True)
    source = folder / "source.mp4"
    source.write_bytes(b"precious")
    with pytest.raises(ValueError, match="contains the source video"):
        remove_attempt_work_dir(folder, source)
    assert source.read_bytes() == b"precious"
