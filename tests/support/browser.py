"""Debian's Chromium for the browser tests (Playwright drives it; no browser is downloaded)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(),
    reason="no Chromium on this machine: `apt-get install chromium` (.ci/run does)",
)
