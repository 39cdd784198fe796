"""`uv run python bench/startup.py`: how fast a browser starts the original recording and the one
upload-jobs uploads, over an emulated link (20 Mbit/s, 60 ms round trip by default).

For each recording length (1 and 10 minutes, 720p H.264/AAC at ~3 Mbit/s, moov at the end, as a
recorder leaves it) the original goes into the local S3 server as it is and the upload as the
product makes it (`optimize_for_streaming`: the index moved to the front in process). Both are
downloaded back and served, as the bucket holds them, by a constant-time range server behind the
emulated link (bench/range_server.py says why not moto itself). Debian's Chromium starts each,
`--rounds` times in a fresh context: requests and bytes before `canplay`, seconds to `canplay`
and to the first frame (first `timeupdate`). Medians, with the ratio original / uploaded, go to
`bench/startup-results.json`, `bench/STARTUP.md` and the plot `bench/startup.png`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.browser_runs import CHROMIUM, add_browser_run_options, require_chromium
from bench.browser_startup import BrowserStart, start_video
from bench.link import Link, LinkProxy
from bench.range_server import RangeServer
from bench.startup_report import write_report
from upload_jobs.media.remux import resolve_ffmpeg
from upload_jobs.media.startup import (
    startup_cost,
)
from upload_jobs.media.streaming import optimize_for_streaming
from upload_jobs.settings import Preset
from upload_jobs.storage.local_s3 import LocalS3Server

BUCKET = "startup-bench"
VARIANTS = ("original", "uploaded")


def make_recording(path: Path, minutes: float, ffmpeg: str) -> Path:
    """A moov-at-end recording of `minutes` (kept for the next run): 720p25, ~3 Mbit/s, 2 s GOP."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    seconds = minutes * 60
    partial = path.with_suffix(".partial.mp4")
    subprocess.run(
        [
            ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=25:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "3M", "-maxrate", "3M",
            "-bufsize", "6M", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
            "-f", "mp4", f"file:{partial}",
        ],
        check=True,
    )  # fmt: skip
    partial.rename(path)
    return path


def upload_both(
    client: Any, source: Path, work_dir: Path, served: Path, ffmpeg: str
) -> dict[str, Any]:
    """Put the original as it is and the product's stream-ready upload, and download both
    under `served`; their keys and modelled startup costs."""
    stem = source.stem
    original_key, uploaded_key = f"original/{stem}.mp4", f"uploaded/{stem}.mp4"
    with source.open("rb") as original:
        client.upload_fileobj(original, BUCKET, original_key, {"ContentType": "video/mp4"})
    made = optimize_for_streaming(source, work_dir, Preset.FASTSTART, ffmpeg)
    with made.body.open() as body:
        client.upload_fileobj(body, BUCKET, uploaded_key, {"ContentType": "video/mp4"})
    for key in (original_key, uploaded_key):
        (served / key).parent.mkdir(parents=True, exist_ok=True)
        client.download_file(BUCKET, key, str(served / key))
    return {
        "size_bytes": source.stat().st_size,
        "path": str(made.path),
        "keys": {"original": original_key, "uploaded": uploaded_key},
        "model": {
            "original": _cost(startup_cost(source)),
            "uploaded": _cost(startup_cost(served / uploaded_key)),
        },
    }


def _cost(cost: Any) -> dict[str, int] | None:
    return None if cost is None else dict(vars(cost))


def measure(
    recordings: dict[str, dict[str, Any]], endpoint: str, link: LinkProxy, rounds: int
) -> None:
    """Start every variant of every recording `rounds` times, interleaved, into `recordings`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--autoplay-policy=no-user-gesture-required"]
        )
        try:
            first = next(iter(recordings.values()))
            start_video(browser, f"{endpoint}/{first['keys']['uploaded']}", link)  # warm-up
            for round_number in range(rounds):
                for name, recording in recordings.items():
                    for variant in VARIANTS:
                        url = f"{endpoint}/{recording['keys'][variant]}"
                        start = start_video(browser, url, link)
                        recording.setdefault("runs", {}).setdefault(variant, []).append(vars(start))
                        print(
                            f"round {round_number + 1}: {name} {variant}: first frame "
                            f"{start.first_frame_seconds:.2f} s; before canplay "
                            f"{start.requests_before_canplay} requests, "
                            f"{start.bytes_before_canplay / 1e6:.2f} MB",
                            flush=True,
                        )
        finally:
            browser.close()


def medians(recordings: dict[str, dict[str, Any]]) -> None:
    """Each variant's median figures, and the ratios original / uploaded."""
    fields = [f for f in BrowserStart.__dataclass_fields__ if f != "ranges_before_canplay"]
    for recording in recordings.values():
        runs = recording["runs"]
        recording["median"] = {
            variant: {f: statistics.median(run[f] for run in runs[variant]) for f in fields}
            for variant in VARIANTS
        }
        original, uploaded = (recording["median"][v] for v in VARIANTS)
        recording["ratio"] = {
            f: round(original[f] / uploaded[f], 2) if uploaded[f] else None for f in fields
        }


def main() -> None:
    """Make the recordings, upload both variants, start each in Chromium, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10])
    add_browser_run_options(parser, link_mbit=20, work_name="startup")
    arguments = parser.parse_args()
    require_chromium()
    ffmpeg = resolve_ffmpeg()
    link = Link(arguments.link_mbit, arguments.link_rtt_ms)
    recordings: dict[str, dict[str, Any]] = {}
    with LocalS3Server() as s3, tempfile.TemporaryDirectory() as scratch:
        served = Path(scratch) / "served"
        client = boto3.client(
            "s3",
            endpoint_url=s3.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench-secret",
        )
        client.create_bucket(Bucket=BUCKET)
        for minutes in arguments.minutes:
            name = f"{minutes:g}min"
            print(f"Making and uploading the {name} recording…", flush=True)
            source = make_recording(arguments.work_dir / f"{name}.mp4", minutes, ffmpeg)
            recordings[name] = upload_both(client, source, Path(scratch), served, ffmpeg)
        with RangeServer(served) as files:
            proxy = LinkProxy("127.0.0.1", files.port, link).start()
            print(f"Starting each video in Chromium over {link.describe()}…", flush=True)
            measure(recordings, f"http://127.0.0.1:{proxy.port}", proxy, arguments.rounds)
    medians(recordings)
    results = {"link": vars(link), "rounds": arguments.rounds, "recordings": recordings}
    arguments.results_dir.mkdir(parents=True, exist_ok=True)
    (arguments.results_dir / "startup-results.json").write_text(json.dumps(results, indent=2))
    print(write_report(results, arguments.results_dir))


if __name__ == "__main__":
    main()
