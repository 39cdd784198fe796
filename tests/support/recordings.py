"""Large files that pass for an MP4 without running ffmpeg: recordings that were never finalized."""

from __future__ import annotations

import os
import struct
from pathlib import Path

_FTYP = struct.pack(">I4s4sI4s4s", 24, b"ftyp", b"isom", 0x200, b"isom", b"mp41")


def write_unfinished_recording(path: Path, size_bytes: int) -> Path:
    """An `ftyp` box, then an `mdat` of random bytes and no `moov`: what a recorder that crashed
    leaves. It passes the source check; the remux falls back and the original is uploaded."""
    payload = size_bytes - len(_FTYP) - 8
    if payload < 0:
        raise ValueError(f"size_bytes must be at least {len(_FTYP) + 8}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.write(_FTYP)
        out.write(struct.pack(">I4s", payload + 8, b"mdat"))
        out.write(os.urandom(payload))
    return path
