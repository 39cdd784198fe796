"""The startup benchmark's report: a markdown table (`bench/STARTUP.md`, quoted in the README) and
a plot of time to first frame and bytes before `canplay` (`bench/startup.png`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

VARIANT_LABELS = {"original": "original (moov at the end)", "uploaded": "uploaded by upload-jobs"}


def write_report(results: dict[str, Any], results_dir: Path) -> str:
    """Write STARTUP.md and startup.png under `results_dir`; return the markdown."""
    markdown = startup_markdown(results)
    (results_dir / "STARTUP.md").write_text(markdown + "\n")
    plot_startup(results, results_dir / "startup.png")
    return markdown


def startup_markdown(results: dict[str, Any]) -> str:
    """Medians per recording and variant, the ratio original / uploaded on each recording's last
    line."""
    link = results["link"]
    lines = [
        f"Chromium over {link['mbit_per_second']:g} Mbit/s, {link['rtt_ms']:g} ms round trip; "
        f"medians of {results['rounds']} starts, each in a fresh browser context.",
        "",
        "| recording | file | requests before canplay | bytes before canplay "
        "| to canplay | to first frame |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, recording in results["recordings"].items():
        size = f"{recording['size_bytes'] / 1e6:.0f} MB"
        for variant in ("original", "uploaded"):
            median = recording["median"][variant]
            lines.append(
                f"| {name} ({size}) | {VARIANT_LABELS[variant]} "
                f"| {median['requests_before_canplay']:g} "
                f"| {median['bytes_before_canplay'] / 1e6:.2f} MB "
                f"| {median['canplay_seconds']:.2f} s | {median['first_frame_seconds']:.2f} s |"
            )
        ratio = recording["ratio"]
        lines.append(
            f"| {name} | **original / uploaded** | {_ratio(ratio['requests_before_canplay'])} "
            f"| {_ratio(ratio['bytes_before_canplay'])} | {_ratio(ratio['canplay_seconds'])} "
            f"| **{_ratio(ratio['first_frame_seconds'])}** |"
        )
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def plot_startup(results: dict[str, Any], path: Path) -> None:
    """Two panels, grouped by recording: seconds to the first frame, MB fetched before canplay."""
    import matplotlib

    matplotlib.use("Agg")  # no screen here, and none needed
    import matplotlib.pyplot as plt

    names = list(results["recordings"])
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    panels = [
        ("first_frame_seconds", "seconds from src set to the first frame", 1.0),
        ("bytes_before_canplay", "MB fetched before canplay", 1e6),
    ]
    width = 0.38
    colours = {"original": "#b7791f", "uploaded": "#17724a"}
    for axis, (field, title, scale) in zip(axes, panels, strict=True):
        for offset, variant in ((-width / 2, "original"), (width / 2, "uploaded")):
            values = [results["recordings"][n]["median"][variant][field] / scale for n in names]
            bars = axis.bar(
                [i + offset for i in range(len(names))],
                values,
                width,
                label=VARIANT_LABELS[variant],
                color=colours[variant],
            )
            axis.bar_label(bars, fmt="%.2f", fontsize=8, padding=2)
        axis.set_xticks(range(len(names)), [f"{n} recording" for n in names])
        axis.set_title(title, fontsize=10)
        axis.margins(y=0.18)
        axis.spines[["top", "right"]].set_visible(False)
    link = results["link"]
    figure.suptitle(
        f"Starting a video in Chromium over {link['mbit_per_second']:g} Mbit/s, "
        f"{link['rtt_ms']:g} ms RTT (medians of {results['rounds']})",
        fontsize=11,
    )
    axes[0].legend(fontsize=8, frameon=False, loc="upper left")
    figure.savefig(path, dpi=110)
    plt.close(figure)
