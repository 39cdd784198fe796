"""Object keys for uploaded videos: derived from the source by a template, always under a prefix.

The default template, `{parent}/{name}`, keeps the folder a recording pipeline names per day or
per session (`/recordings/2026-11-23/merged.mp4` goes to `videos/2026-11-23/merged.mp4`): the
same file always gets the same key, people can read it in a CDN link, and same-named files of
different folders no longer share a key. Where even folder names repeat, `{job_id}` or `{sha8}`
in the template make every key unique; a key taken anyway is refused when the job is added.
"""

from __future__ import annotations

import os
import string
import unicodedata
from collections.abc import Callable
from pathlib import Path

from upload_jobs.errors import InvalidObjectKey
from upload_jobs.storage.checksums import file_sha256

DEFAULT_PREFIX = "videos/"
DEFAULT_KEY_TEMPLATE = "{parent}/{name}"
# What a template may use, and what each stands for (for the error naming the known ones).
KEY_TEMPLATE_FIELDS = {
    "name": "the file name (merged.mp4)",
    "stem": "the file name without its extension (merged)",
    "ext": "the extension with its dot (.mp4)",
    "parent": "the name of the file's folder (2026-11-23)",
    "job_id": "the job's id (42)",
    "sha8": "the first 8 hex digits of the file's sha256",
}
# Fields that tell one file from another; a template without any would give every job one key.
_DISTINGUISHING_FIELDS = {"name", "stem", "job_id", "sha8"}
# S3 (and Spaces) reject keys longer than this many UTF-8 bytes.
MAX_KEY_BYTES = 1024
# Keys quoted in error messages are cut here so a 2000-character name cannot flood a log line.
_MAX_QUOTED_CHARS = 80

__all__ = [
    "DEFAULT_KEY_TEMPLATE",
    "DEFAULT_PREFIX",
    "KEY_TEMPLATE_FIELDS",
    "MAX_KEY_BYTES",
    "key_for_new_job",
    "key_template_fields",
    "object_key_for",
    "sanitize_object_key",
]


def key_template_fields(template: str) -> set[str]:
    """The fields `template` uses; `InvalidObjectKey` for an unknown field or a template that
    names no field telling files apart."""
    try:
        used = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    except ValueError as exc:  # an unmatched brace
        raise InvalidObjectKey(f"Invalid key template {_quoted(template)}: {exc}") from None
    known = ", ".join("{" + name + "}" for name in KEY_TEMPLATE_FIELDS)
    if unknown := sorted(used - set(KEY_TEMPLATE_FIELDS)):
        raise InvalidObjectKey(
            f"Invalid key template {_quoted(template)}: unknown field {{{unknown[0]}}}; "
            f"the fields are {known}"
        )
    if not used & _DISTINGUISHING_FIELDS:
        raise InvalidObjectKey(
            f"Invalid key template {_quoted(template)}: it would give every job the same key; "
            "use {name}, {stem}, {job_id} or {sha8}"
        )
    return used


def object_key_for(
    source_path: Path | str,
    prefix: str = DEFAULT_PREFIX,
    template: str = DEFAULT_KEY_TEMPLATE,
    *,
    job_id: int | None = None,
    sha8: str | None = None,
) -> str:
    """The key `template` gives the source video, under `prefix`; `{job_id}` and `{sha8}` need
    their values passed in."""
    # normpath, not resolve: `/a/../b.mp4` names b.mp4 in /, and symlinks keep their own name.
    path = Path(os.path.normpath(source_path)) if str(source_path) else Path()
    if not path.name or path.name in (".", ".."):
        raise InvalidObjectKey(
            f"Cannot derive an object key from {_quoted(str(source_path))}: the path names no file"
        )
    used = key_template_fields(template)
    for field, value in (("job_id", job_id), ("sha8", sha8)):
        if field in used and value is None:
            raise ValueError(f"the key template uses {{{field}}}: pass {field}")
    key = template.format(
        name=path.name,
        stem=path.stem,
        ext=path.suffix,
        parent=path.parent.name,
        job_id=job_id,
        sha8=sha8,
    )
    return sanitize_object_key(key, prefix)


def key_for_new_job(
    source: Path, prefix: str, template: str, explicit_key: str | None = None
) -> str | Callable[[int], str]:
    """The key `add` gives a new job: `explicit_key` under the prefix, else the template's; a
    function of the job's id when the template uses `{job_id}` (checked now all the same)."""
    if explicit_key is not None:
        return sanitize_object_key(explicit_key, prefix)
    used = key_template_fields(template)
    sha8 = None
    if "sha8" in used:
        try:
            sha8 = file_sha256(source)[:8]
        except OSError as exc:
            raise InvalidObjectKey(
                f"The key template {template!r} uses {{sha8}}, the file's sha256, and "
                f"{_quoted(str(source))} cannot be read ({exc.strerror or exc}): give a --key"
            ) from None
    if "job_id" not in used:
        return object_key_for(source, prefix, template, sha8=sha8)
    object_key_for(source, prefix, template, job_id=0, sha8=sha8)  # a bad name fails now

    def key_of(job_id: int) -> str:
        return object_key_for(source, prefix, template, job_id=job_id, sha8=sha8)

    return key_of


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
