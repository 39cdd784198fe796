"""`uv run python bench/abr.py`: what the `abr` preset buys a viewer on a slow link, against
`faststart` and the original, and what it costs in CPU.

A 1080p recording (75 s, H.264/AAC at ~5 Mbit/s, moov at the end, as a recorder leaves it) is
prepared with the product's own code (`optimize_for_streaming`): the original as it is,
`faststart` (its index moved in process) and `abr` (the ladder chosen from the source). Each is
served by a constant-time range server behind the emulated link (2 Mbit/s, 60 ms round trip by
default; bench/link.py) and Debian's Chromium plays it for 60 s of wall time, `--rounds` times in
a fresh context, interleaved: time to first frame, stalls (count and seconds), video played, the
rendition it settled on. CPU: each rung encoded alone (x real time on this machine), and the
whole ladder as the product encodes it (one ffmpeg). Ladders: three source qualities (1080p,
720p, 480p, 10 s each) with the rungs chosen and their PSNR/SSIM. Medians to
`bench/abr-results.json`, `bench/ABR.md` and the plot `bench/abr.png`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.abr_report import write_report
from bench.browser_runs import CHROMIUM, add_browser_run_options, require_chromium
from bench.link import Link, LinkProxy
from bench.playback import Viewing, watch
from bench.range_server import RangeServer
from upload_jobs.media.encoding import h264_options
from upload_jobs.media.ladder import Rendition
from upload_jobs.media.mp4 import read_layout
from upload_jobs.media.remux import resolve_ffmpeg
from upload_jobs.media.streaming import StreamingOptions, optimize_for_streaming
from upload_jobs.settings import Preset

VARIANTS = ("original", "faststart", "abr")
# Three source qualities for the ladder table: (name, size, video kbit/s).
QUALITIES = (("1080p", "1920x1080", 5000), ("720p", "1280x720", 3000), ("480p", "854x480", 1500))


def make_recording(path: Path, size: str, kbps: int, seconds: float, ffmpeg: str) -> Path:
    """A moov-at-end recording (kept for the next run): H.264 at `kbps`, AAC, 2 s GOP, 25 fps."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.mp4")
    subprocess.run(
        [
            ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v", "libx264", "-preset", "veryfast", "-b:v", f"{kbps}k", "-maxrate",
            f"{kbps}k", "-bufsize", f"{2 * kbps}k", "-g", "50", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "128k", "-f", "mp4", f"file:{partial}",
        ],
        check=True,
    )  # fmt: skip
    partial.rename(path)
    return path


def prepare(source: Path, served: Path, work_dir: Path, ffmpeg: str) -> dict[str, Any]:
    """The three variants under `served`, as the product makes them; the ladder's figures."""
    name = source.name
    (served / "original").mkdir(parents=True)
    shutil.copyfile(source, served / "original" / name)
    moved = optimize_for_streaming(source, work_dir, Preset.FASTSTART, ffmpeg)
    (served / "faststart").mkdir()
    with moved.body.open() as body, (served / "faststart" / name).open("wb") as out:
        shutil.copyfileobj(body, out)
    started = time.perf_counter()
    ladder = optimize_for_streaming(source, work_dir, Preset.ABR, ffmpeg)
    seconds = time.perf_counter() - started
    assert ladder.package is not None
    shutil.copytree(ladder.package.directory, served / "abr")
    shutil.rmtree(ladder.package.directory)
    duration = ladder.source_duration_seconds or 0
    return {
        "urls": {
            "original": f"original/{name}",
            "faststart": f"faststart/{name}",
            "abr": "abr/master.m3u8",
        },
        "renditions": [vars(r) for r in ladder.renditions],
        "ladder_seconds": round(seconds, 2),
        "ladder_x_real_time": round(duration / seconds, 2) if seconds else None,
        "paths": {"faststart": str(moved.path), "abr": str(ladder.path)},
    }


def rung_speeds(
    source: Path, renditions: list[dict[str, Any]], ffmpeg: str
) -> list[dict[str, Any]]:
    """Each rung encoded alone (scaled, x264 as the ladder encodes it, audio not encoded):
    seconds of video per second of wall time on this machine."""
    duration = _duration(source)
    speeds = []
    for r in renditions:
        rung = Rendition(r["name"], r["width"], r["height"], r["bitrate"] // 1000, 0)
        command = [ffmpeg, "-nostdin", "-v", "error", "-i", str(source), "-an",
                   "-vf", f"scale={rung.width}:{rung.height}",
                   *h264_options("v:0", kbps=rung.video_kbps), "-f", "null", "-"]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, check=True)
        seconds = time.perf_counter() - started
        speeds.append({"rendition": r["name"], "seconds": round(seconds, 2),
                       "x_real_time": round(duration / seconds, 2)})  # fmt: skip
        print(f"  {r['name']}: {duration / seconds:.2f}x real time", flush=True)
    return speeds


def _duration(source: Path) -> float:
    return read_layout(source).duration_seconds or 0.0


def ladders_for_qualities(work_dir: Path, ffmpeg: str) -> list[dict[str, Any]]:
    """The ladder the product chooses for three source qualities, with PSNR/SSIM per rung."""
    found = []
    for name, size, kbps in QUALITIES:
        source = make_recording(work_dir / f"{name}-10s.mp4", size, kbps, 10, ffmpeg)
        options = StreamingOptions(quality_sample_seconds=10)
        made = optimize_for_streaming(
            source, work_dir / "scratch", Preset.ABR, ffmpeg, options=options
        )
        assert made.package is not None
        shutil.rmtree(made.package.directory)
        found.append({"source": name, "size": size, "kbps": kbps,
                      "renditions": [vars(r) for r in made.renditions]})  # fmt: skip
        print(f"  {name}: " + ", ".join(r.name for r in made.renditions), flush=True)
    return found


def view_all(
    urls: dict[str, str], endpoint: str, rounds: int, seconds: float
) -> dict[str, list[dict[str, Any]]]:
    """Play every variant `rounds` times, interleaved."""
    from playwright.sync_api import sync_playwright

    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--autoplay-policy=no-user-gesture-required"]
        )
        try:
            for round_number in range(rounds):
                for variant in VARIANTS:
                    viewing = watch(browser, f"{endpoint}/{urls[variant]}", seconds)
                    runs[variant].append({**vars(viewing), "settled": viewing.settled_height})
                    print(f"round {round_number + 1}: {variant}: {_said(viewing)}", flush=True)
        finally:
            browser.close()
    return runs


def _said(viewing: Viewing) -> str:
    first = "none" if viewing.first_frame_seconds is None else f"{viewing.first_frame_seconds} s"
    return (f"first frame {first}, {viewing.stalls} stalls ({viewing.stalled_seconds} s), "
            f"{viewing.played_seconds} s played, settled at {viewing.settled_height}p")  # fmt: skip


def medians(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each variant's median figures (first frame missing counts as the whole window)."""
    fields = ("first_frame_seconds", "stalls", "stalled_seconds", "played_seconds")
    found: dict[str, dict[str, Any]] = {}
    for variant, viewings in runs.items():
        found[variant] = {
            f: statistics.median(v[f] if v[f] is not None else float("inf") for v in viewings)
            for f in fields
        }
        settled = [v["settled"] for v in viewings if v["settled"] is not None]
        found[variant]["settled"] = statistics.median(settled) if settled else None
    return found


def main() -> None:
    """Make the recording, prepare its three variants, play each in Chromium, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=75, help="the recording's length")
    parser.add_argument("--play-seconds", type=float, default=60)
    add_browser_run_options(parser, link_mbit=2, work_name="abr")
    arguments = parser.parse_args()
    require_chromium()
    ffmpeg = resolve_ffmpeg()
    link = Link(arguments.link_mbit, arguments.link_rtt_ms)
    print("Making the 1080p recording (kept for the next run)…", flush=True)
    source = make_recording(arguments.work_dir / f"1080p-{arguments.seconds:g}s.mp4",
                            "1920x1080", 5000, arguments.seconds, ffmpeg)  # fmt: skip
    print("Ladders for three source qualities…", flush=True)
    ladders = ladders_for_qualities(arguments.work_dir, ffmpeg)
    with tempfile.TemporaryDirectory() as scratch:
        served = Path(scratch) / "served"
        print("Preparing original, faststart and abr…", flush=True)
        prepared = prepare(source, served, Path(scratch) / "work", ffmpeg)
        print(f"Ladder encoded at {prepared['ladder_x_real_time']}x real time; each rung alone:",
              flush=True)  # fmt: skip
        prepared["rung_speeds"] = rung_speeds(source, prepared["renditions"], ffmpeg)
        with RangeServer(served) as files:
            proxy = LinkProxy("127.0.0.1", files.port, link).start()
            print(f"Playing each in Chromium over {link.describe()}…", flush=True)
            runs = view_all(prepared["urls"], f"http://127.0.0.1:{proxy.port}",
                            arguments.rounds, arguments.play_seconds)  # fmt: skip
    results = {
        "link": vars(link), "rounds": arguments.rounds, "play_seconds": arguments.play_seconds,
        "recording": {"seconds": arguments.seconds, "size_bytes": source.stat().st_size},
        **prepared, "runs": runs, "median": medians(runs), "ladders": ladders,
    }  # fmt: skip
    arguments.results_dir.mkdir(parents=True, exist_ok=True)
    (arguments.results_dir / "abr-results.json").write_text(json.dumps(results, indent=2))
    print(write_report(results, arguments.results_dir))


if __name__ == "__main__":
    main()
