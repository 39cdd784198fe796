"""The sha256 an upload carries in its metadata: how a later run or reconcile knows its bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK_BYTES = 8 * 1024 * 1024


def file_sha256(path: Path, chunk_size: int = CHUNK_BYTES) -> str:
    """Hex SHA-256 of a file, read `chunk_size` bytes at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
