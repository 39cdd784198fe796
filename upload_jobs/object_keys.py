"""Object keys for uploaded videos: derived from the source file name, always under a prefix."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from upload_jobs.errors import InvalidObjectKey

DEFAULT_PREFIX = "videos/"
# S3 (and Spaces) reject keys longer than this many UTF-8 bytes.
MAX_KEY_BYTES = 1024
# Keys quoted in error messages are cut here so a 2000-character name cannot flood a log line.
_MAX_QUOTED_CHARS = 80

__all__ = ["DEFAULT_PREFIX", "MAX_KEY_BYTES", "object_key_for", "sanitize_object_key"]


def object_key_for(source_path: Path | str, prefix: str = DEFAULT_PREFIX) -> str:
    """The default key of a source video: the prefix plus the file name (never its folders)."""
    name = Path(source_path).name
    if not name:
        raise InvalidObjectKey(
            f"Cannot derive an object key from {_quoted(str(source_path))}: the path names no file"
        )
    return sanitize_object_key(name, prefix)


def sanitize_object_key(key: str, prefix: str = DEFAULT_PREFIX) -> str:
    """A safe key under `prefix` for a user-given key; raises `InvalidObjectKey` when none exists.

    Leading and doubled slashes are dropped; `.`/`..` segments and control characters are refused.
    """
    clean_prefix = _normalized_prefix(prefix)
    clean_key = _normalized_path(key, what="key")
    if not clean_key:
        raise InvalidObjectKey(f"Invalid object key {_quoted(key)}: it is empty")
    if clean_key.endswith("/"):
        # A trailing slash names a "folder" in the bucket, not a video file.
        raise InvalidObjectKey(
            f"Invalid object key {_quoted(key)}: it ends with '/' and names no file"
        )
    # Checking the prefix on segment boundaries keeps "videosX/a.mp4" from passing as "videos/".
    full_key = clean_key if clean_key.startswith(clean_prefix) else clean_prefix + clean_key
    if full_key == clean_prefix:
        raise InvalidObjectKey(f"Invalid object key {_quoted(key)}: it names only the prefix")
    size = len(full_key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise InvalidObjectKey(
            f"Invalid object key {_quoted(key)}: {size} UTF-8 bytes with its "
            f"prefix, the limit is {MAX_KEY_BYTES}"
        )
    return full_key


def _normalized_prefix(prefix: str) -> str:
    """The prefix validated like a key, with exactly one trailing '/' unless it is empty."""
    clean = _normalized_path(prefix, what="key prefix").rstrip("/")
    return f"{clean}/" if clean else ""


def _normalized_path(value: str, *, what: str) -> str:
    """`value` without leading or doubled slashes; refuses control characters and dot segments."""
    bad = next((ch for ch in value if unicodedata.category(ch) in ("Cc", "Cs")), None)
    if bad is not None:
        raise InvalidObjectKey(
            f"Invalid object {what} {_quoted(value)}: it contains the control "
            f"or unencodable character U+{ord(bad):04X}"
        )
    segments = value.split("/")
    # Empty segments come from leading, doubled or trailing slashes; only a trailing one survives.
    kept = [segment for segment in segments if segment]
    for segment in kept:
        if segment in (".", ".."):
            raise InvalidObjectKey(
                f"Invalid object {what} {_quoted(value)}: '{segment}' path "
                "segments are not allowed (a key must stay under its prefix)"
            )
    trailing = "/" if kept and value.endswith("/") else ""
    return "/".join(kept) + trailing


def _quoted(value: str) -> str:
    """`value` as a repr short enough for an error message."""
    if len(value) > _MAX_QUOTED_CHARS:
        return repr(value[:_MAX_QUOTED_CHARS]) + f"… ({len(value)} characters)"
    return repr(value)
