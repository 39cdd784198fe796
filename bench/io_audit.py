"""Bytes read and written per file, counted from the system calls of a run and of every process
it starts (ffmpeg too): what "reads the source once to hash it and once to send it, and writes
nothing" means, measured rather than worked out.

A run under `strace -ff` writes one trace per process; each `read`/`write` (and their `p`/`v`
forms) names its file (`-y`) and returns the byte count. The counts go to the first of the
`places` (path prefixes) a file is under. strace slows a run several-fold: these runs measure
bytes, never time, and are not counted in the wall-time medians.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

SYSCALLS = "read,pread64,readv,preadv,preadv2,write,pwrite64,writev,pwritev,pwritev2"
# `1234 read(5</path/to/file.mp4>, ""..., 65536) = 65536` (the pid prefix is absent with -ff).
_CALL = re.compile(
    r"^(?P<call>p?(?:read|write)v?2?(?:64)?)\(\d+<(?P<path>[^>]*)>.*\)\s+=\s+(?P<n>\d+)"
)


def strace_available() -> bool:
    """Whether strace is on PATH (the I/O columns are left out without it)."""
    return shutil.which("strace") is not None


def traced(command: list[str]) -> tuple[list[str], Path]:
    """`command` under strace, following children, one trace file per process in a new folder."""
    folder = Path(tempfile.mkdtemp(prefix="io-audit-"))
    strace = [
        shutil.which("strace") or "strace", "-ff", "-qq", "-y", "-s", "0",
        "-e", f"trace={SYSCALLS}", "-e", "signal=none", "-o", str(folder / "trace"),
    ]  # fmt: skip
    return [*strace, "--", *command], folder


def bytes_by_place(folder: Path, places: dict[str, Path]) -> Counter[str]:
    """From the traces in `folder`: bytes `read`/`written` under each named place, as
    `"{name} read"` and `"{name} written"`; the traces are removed."""
    prefixes = [(name, str(path.resolve()) + "/") for name, path in places.items()]
    totals: Counter[str] = Counter()
    for trace in folder.glob("trace.*"):
        with trace.open(errors="replace") as lines:
            for line in lines:
                match = _CALL.match(line)
                if match is None:
                    continue
                path = match["path"]
                name = next((name for name, prefix in prefixes if path.startswith(prefix)), None)
                if name is not None:
                    direction = "read" if "read" in match["call"] else "written"
                    totals[f"{name} {direction}"] += int(match["n"])
    shutil.rmtree(folder, ignore_errors=True)
    return totals


def run_traced(command: list[str], places: dict[str, Path], **popen: object) -> Counter[str]:
    """Run `command` under strace (`popen`: subprocess.run's other arguments) and count."""
    wrapped, folder = traced(command)
    subprocess.run(wrapped, check=True, **popen)  # type: ignore[call-overload]
    return bytes_by_place(folder, places)
