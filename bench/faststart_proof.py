"""`uv run python bench/faststart_proof.py [VIDEO]`: the in-process faststart of a large file,
checked the way a player meets it.

The moved body (ftyp, the rebuilt moov, the source's byte ranges) is piped into ffmpeg, which can
only read an MP4 from a pipe when its index comes first, and never written to disk. Its
`framemd5` (every packet's checksum and timestamps, `-c copy`) must equal the source's. VIDEO
defaults to W3's file (`bench/run.py` makes it). Exit 0 when identical.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: `upload_jobs` from this checkout
    sys.path.insert(0, str(REPO_ROOT))

from upload_jobs.media.faststart import FaststartRefused, plan_faststart  # noqa: E402
from upload_jobs.media.mp4 import NotAnMp4, read_layout  # noqa: E402
from upload_jobs.media.remux import resolve_ffmpeg  # noqa: E402
from upload_jobs.storage.upload_body import UploadBody  # noqa: E402

DEFAULT_VIDEO = REPO_ROOT / "bench" / ".work" / "workloads" / "W3" / "w3-000.mp4"
PIPE_CHUNK = 1 << 20


def packet_lines(ffmpeg: str, input_args: list[str], feed: UploadBody | None = None) -> list[bytes]:
    """framemd5's packet lines for the input (headers dropped); `feed` is written to ffmpeg's
    stdin."""
    command = [ffmpeg, "-v", "error", *input_args, "-map", "0", "-c", "copy", "-f", "framemd5", "-"]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.append(process.stdout.read()))  # type: ignore[union-attr]
    reader.start()
    assert process.stdin is not None
    if feed is not None:
        with feed.open() as moved:
            while chunk := moved.read(PIPE_CHUNK):
                process.stdin.write(chunk)
    process.stdin.close()
    reader.join()
    if process.wait() != 0:
        raise SystemExit(f"ffmpeg failed on {input_args}")
    return [line for line in output[0].splitlines() if not line.startswith(b"#")]


def main() -> int:
    """Compare the source's packets with those of its moved body read from a pipe."""
    video = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_VIDEO
    if not video.is_file():
        hint = (
            " (`uv run python bench/run.py --workloads W3` makes it)" if len(sys.argv) < 2 else ""
        )
        print(f"{video} is not a file{hint}; or name a video: bench/faststart_proof.py VIDEO")
        return 2
    ffmpeg = resolve_ffmpeg()
    started = time.perf_counter()
    try:
        body = plan_faststart(video, read_layout(video)).body
    except (FaststartRefused, NotAnMp4) as refused:
        print(f"{video.name}: not moved in process: {refused}")
        return 1
    source = packet_lines(ffmpeg, ["-i", f"file:{video}"])
    moved = packet_lines(ffmpeg, ["-f", "mp4", "-i", "pipe:0"], feed=body)
    same = source == moved
    print(
        f"{video.name}: {video.stat().st_size} bytes, {len(source)} packets in the source, "
        f"{len(moved)} in the moved body read from a pipe: "
        f"{'identical' if same else 'DIFFERENT'} ({time.perf_counter() - started:.1f} s)"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
