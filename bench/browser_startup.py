"""One browser start of a video over the emulated link: Debian's Chromium (through Playwright)
sets a `<video>`'s src and reports when it can play and when the first frame is shown, while the
link counts what it delivered and Playwright the requests made for the video."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.link import LinkProxy

# Times from `src` set to `canplay` and to the first `timeupdate` past 0 (the first frame shown).
START_VIDEO = """(src) => new Promise((resolve) => {
  const video = document.createElement('video');
  video.muted = true;
  video.preload = 'auto';
  document.body.append(video);
  const marks = {};
  const started = performance.now();
  video.addEventListener('canplay', () => {
    if (marks.canplay_ms === undefined) {
      marks.canplay_ms = performance.now() - started;
      window.markCanplay();
    }
  });
  video.addEventListener('timeupdate', () => {
    if (video.currentTime > 0 && marks.first_frame_ms === undefined) {
      marks.first_frame_ms = performance.now() - started;
      resolve(marks);
    }
  });
  video.addEventListener('error', () => resolve({...marks, error: String(video.error.code)}));
  setTimeout(() => resolve({...marks, error: 'no first frame within 120 s'}), 120000);
  video.src = src;
  video.play().catch((err) => { marks.play_error = String(err); });
})"""


@dataclass(frozen=True)
class BrowserStart:
    """What one start of one video cost the browser."""

    requests_before_canplay: int
    ranges_before_canplay: list[str]
    bytes_before_canplay: int
    canplay_seconds: float
    first_frame_seconds: float
    requests_in_all: int


def start_video(browser: Any, url: str, link: LinkProxy) -> BrowserStart:
    """Start `url` in a fresh browser context (an empty cache) and measure it."""
    context = browser.new_context()
    try:
        page = context.new_page()
        ranges: list[str] = []
        at_canplay: dict[str, Any] = {}

        def on_request(request: Any) -> None:
            if request.url == url:
                ranges.append(request.headers.get("range", "(whole file)"))

        def mark_canplay() -> None:
            at_canplay["requests"] = list(ranges)
            at_canplay["bytes"] = link.bytes_to_clients - delivered_before

        page.on("request", on_request)
        page.expose_function("markCanplay", mark_canplay)
        delivered_before = link.bytes_to_clients
        marks = page.evaluate(START_VIDEO, url)
        if "error" in marks:
            raise RuntimeError(f"Chromium could not start {url}: {marks['error']}")
        return BrowserStart(
            requests_before_canplay=len(at_canplay["requests"]),
            ranges_before_canplay=at_canplay["requests"],
            bytes_before_canplay=at_canplay["bytes"],
            canplay_seconds=round(marks["canplay_ms"] / 1000, 3),
            first_frame_seconds=round(marks["first_frame_ms"] / 1000, 3),
            requests_in_all=len(ranges),
        )
    finally:
        context.close()
        time.sleep(0.5)  # let the link drop what the closed connections left in flight
