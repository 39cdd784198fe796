"""The `abr` benchmark's report: markdown tables (`bench/ABR.md`, quoted in the README) and a
plot of time to first frame, stalled seconds and video played per variant (`bench/abr.png`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LABELS = {
    "original": "original (moov at the end)",
    "faststart": "faststart (index moved)",
    "abr": "abr (HLS ladder)",
}
COLOURS = {"original": "#b7791f", "faststart": "#2b6cb0", "abr": "#17724a"}


def write_report(results: dict[str, Any], results_dir: Path) -> str:
    """Write ABR.md and abr.png under `results_dir`; return the markdown."""
    markdown = abr_markdown(results)
    (results_dir / "ABR.md").write_text(markdown + "\n")
    plot_playback(results, results_dir / "abr.png")
    return markdown


def abr_markdown(results: dict[str, Any]) -> str:
    """Playback medians per variant, the ladder's speed per rung, the three sources' ladders."""
    link, median = results["link"], results["median"]
    size = results["recording"]["size_bytes"] / 1e6
    lines = [
        f"A {results['recording']['seconds']:g} s 1080p recording ({size:.0f} MB, ~5 Mbit/s), "
        f"played {results['play_seconds']:g} s in Chromium over {link['mbit_per_second']:g} "
        f"Mbit/s, {link['rtt_ms']:g} ms round trip; medians of {results['rounds']} viewings, "
        "each in a fresh browser context.",
        "",
        "| variant | to first frame | stalls | stalled | video played | rendition shown |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for variant, label in LABELS.items():
        m = median[variant]
        settled = f"{m['settled']:g}p" if m["settled"] else "-"
        lines.append(
            f"| {label} | {m['first_frame_seconds']:.2f} s | {m['stalls']:g} "
            f"| {m['stalled_seconds']:.1f} s | {m['played_seconds']:.1f} s | {settled} |"
        )
    lines += [
        "",
        "CPU on this machine (2 cores): the abr step as the product runs it (the whole ladder "
        "in one ffmpeg, then PSNR/SSIM of each rung over its first 60 s) "
        f"{results['ladder_seconds']:.1f} s ({results['ladder_x_real_time']:.2f}x real time); "
        "each rung encoded alone, video only:",
        "",
        "| rendition | size | bitrate | PSNR | SSIM | x real time alone |",
        "|---|---|---:|---:|---:|---:|",
    ]
    speeds = {s["rendition"]: s["x_real_time"] for s in results["rung_speeds"]}
    for r in results["renditions"]:
        lines.append(_rendition_row(r, f"{speeds.get(r['name'], 0):.2f}x"))
    lines += [
        "",
        "Ladders chosen for three source qualities (10 s each):",
        "",
        "| source | rendition | size | bitrate | PSNR | SSIM |",
        "|---|---|---|---:|---:|---:|",
    ]
    for ladder in results["ladders"]:
        source = f"{ladder['source']} at {ladder['kbps'] / 1000:g} Mbit/s"
        for r in ladder["renditions"]:
            lines.append(f"| {source} " + _rendition_row(r, None))
            source = ""
    return "\n".join(lines)


def _rendition_row(r: dict[str, Any], speed: str | None) -> str:
    psnr = "-" if r["psnr"] is None else f"{r['psnr']:.1f} dB"
    ssim = "-" if r["ssim"] is None else f"{r['ssim']:.4f}"
    row = (f"| {r['name']} | {r['width']}x{r['height']} | {r['bitrate'] / 1e6:.2f} Mbit/s "
           f"| {psnr} | {ssim} |")  # fmt: skip
    return row + (f" {speed} |" if speed is not None else "")


def plot_playback(results: dict[str, Any], path: Path) -> None:
    """Three panels, one bar per variant: first frame, stalled seconds, video played."""
    import matplotlib

    matplotlib.use("Agg")  # no screen here, and none needed
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(10, 3.4), layout="constrained")
    panels = [
        ("first_frame_seconds", "seconds to the first frame"),
        ("stalled_seconds", "seconds stalled"),
        ("played_seconds", "seconds of video played"),
    ]
    variants = list(LABELS)
    for axis, (field, title) in zip(axes, panels, strict=True):
        values = [results["median"][v][field] for v in variants]
        bars = axis.bar(range(len(variants)), values, color=[COLOURS[v] for v in variants])
        axis.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
        axis.set_xticks(range(len(variants)), variants)
        axis.set_title(title, fontsize=10)
        axis.margins(y=0.18)
        axis.spines[["top", "right"]].set_visible(False)
    link = results["link"]
    figure.suptitle(
        f"{results['play_seconds']:g} s of a 1080p recording in Chromium over "
        f"{link['mbit_per_second']:g} Mbit/s, {link['rtt_ms']:g} ms RTT "
        f"(medians of {results['rounds']})",
        fontsize=11,
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)
