"""Byte counts as people read them: `900 B`, `41 KB`, `6.1 MB`, `1.02 GB` (binary units, as most
tools print them)."""

from __future__ import annotations

_KIB = 1024


def format_bytes(size_bytes: int) -> str:
    """A size short enough for a table cell, with two or three significant figures."""
    if size_bytes < _KIB:
        return f"{size_bytes} B"
    value, unit = size_bytes / _KIB, "KB"
    for bigger in ("MB", "GB"):
        if value < _KIB:
            break
        value, unit = value / _KIB, bigger
    decimals = 2 if value < 10 else 1 if value < 100 else 0
    return f"{value:.{decimals}f} {unit}"
