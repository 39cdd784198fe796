"""The three workloads, generated with ffmpeg and kept between runs (they take ~30 s to make).

Every file is H.264 + AAC in ffmpeg's default MP4 layout, moov at the end, so the project remuxes
each one with `+faststart` (and the baseline runs the same command). The copies of one master
differ in a metadata tag: distinct bytes, distinct sha256, the same remux work.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

MB = 1_000_000
# Lossless x264 on testsrc2 at 1080p30 makes ~4.3 MB a second of video, fast (ultrafast preset).
MASTER_1080P_SECONDS = 24  # ~102 MB
MASTER_720P_SECONDS = 1  # ~2.1 MB


@dataclass(frozen=True)
class Workload:
    """A named set of jobs: `jobs` files made from one master, optionally looped."""

    name: str
    summary: str
    jobs: int
    master: str  # "1080p" or "720p"
    loops: int = 1  # the master played this many times in each file
    # The numbers of jobs each side is run over: two give the seconds per job (the slope) apart
    # from the fixed cost of a run (the intercept).
    sizes: tuple[int, ...] = ()

    def sizes_up_to(self, cap: int | None, instead: list[int] | None = None) -> list[int]:
        """The sizes to run (`instead` of the workload's own, when given), each at most `cap`
        jobs and the files there are, without repeats."""
        wanted = instead or self.sizes or (self.jobs,)
        return sorted({max(1, min(size, cap or size, self.jobs)) for size in wanted})

    def directory(self, root: Path) -> Path:
        """Where this workload's files live under `root`."""
        return root / self.name

    def files(self, root: Path) -> list[Path]:
        """The workload's files, in job order."""
        return [self.directory(root) / f"{self.name.lower()}-{n:03d}.mp4" for n in range(self.jobs)]


WORKLOADS = {
    "W1": Workload("W1", "large files (~100 MB, 1080p)", jobs=16, master="1080p", sizes=(4, 16)),
    "W2": Workload("W2", "small files (~2 MB)", jobs=80, master="720p", sizes=(20, 80)),
    "W3": Workload("W3", "1 huge file (~1 GB)", jobs=1, master="1080p", loops=10, sizes=(1,)),
}


def ensure_workloads(
    workloads: list[Workload], root: Path, ffmpeg: str, say: Callable[[str], None]
) -> None:
    """Generate the workloads' files under `root` unless the same spec already made them."""
    for workload in workloads:
        stamp = workload.directory(root) / "workload.json"
        spec = json.dumps(asdict(workload), sort_keys=True)
        files = workload.files(root)
        if stamp.exists() and stamp.read_text() == spec and all(f.exists() for f in files):
            continue
        say(f"Generating {workload.name}: {workload.summary} with ffmpeg")
        shutil.rmtree(workload.directory(root), ignore_errors=True)
        workload.directory(root).mkdir(parents=True)
        master = _master(root, workload.master, ffmpeg)
        for number, path in enumerate(files):
            _copy_with_tag(ffmpeg, master, path, f"{workload.name}-{number}", workload.loops)
        stamp.write_text(spec)


def _master(root: Path, kind: str, ffmpeg: str) -> Path:
    """The lossless master clip every copy of a workload is made from (made once)."""
    path = root / "masters" / f"{kind}.mp4"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "1080p":
        size, seconds = "1920x1080", MASTER_1080P_SECONDS
    else:
        size, seconds = "1280x720", MASTER_720P_SECONDS
    partial = path.with_suffix(".partial.mp4")
    _run(
        ffmpeg,
        ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={seconds}"],
        ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"],
        ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p"],
        ["-g", "60", "-c:a", "aac", "-b:a", "128k", "-f", "mp4", f"file:{partial}"],
    )
    partial.replace(path)  # a run killed mid-encode leaves no master that looks finished
    return path


def _copy_with_tag(ffmpeg: str, master: Path, path: Path, tag: str, loops: int) -> None:
    """Stream-copy `master` (played `loops` times) to `path` with its own `comment` tag."""
    _run(
        ffmpeg,
        ["-stream_loop", str(loops - 1), "-i", f"file:{master}"],
        ["-map", "0", "-c", "copy", "-metadata", f"comment={tag}", "-f", "mp4", f"file:{path}"],
    )


def _run(ffmpeg: str, *arguments: list[str]) -> None:
    command = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    for part in arguments:
        command += part
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not make a workload file: {result.stderr[-2000:]}")
