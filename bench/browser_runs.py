"""What every browser benchmark asks for on its command line (rounds, the emulated link, where
files are kept and results go) and the Chromium it drives."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def add_browser_run_options(
    parser: argparse.ArgumentParser, *, link_mbit: float, work_name: str
) -> None:
    """`--rounds`, `--link-mbit` (default `link_mbit`), `--link-rtt-ms`, `--work-dir` (kept
    recordings, under bench/.work/`work_name`) and `--results-dir`."""
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--link-mbit", type=float, default=link_mbit)
    parser.add_argument("--link-rtt-ms", type=float, default=60)
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / ".work" / work_name)
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR)


def require_chromium() -> None:
    """Exit with what to do when Debian's Chromium is not installed."""
    if not Path(CHROMIUM).is_file():
        sys.exit("No Chromium here: `apt-get install chromium` first (.ci/run does).")
