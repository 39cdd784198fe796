"""One viewing of a video over the emulated link: Debian's Chromium (through Playwright) plays it
for a fixed wall time from a fresh context and reports the time to the first frame, the stalls
(`waiting` until `playing` again: how many, how long), the seconds of video it got through, and
for HLS the picture heights it showed (which rendition it settled on)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

# Samples the picture height every 250 ms; a stall is counted from `waiting` after the first
# frame to the next `playing` (or the end of the window).
WATCH = """async ([src, seconds]) => {
  const video = document.createElement('video');
  video.muted = true;
  document.body.append(video);
  const started = performance.now();
  const marks = {first_frame_ms: null, stalls: 0, stalled_ms: 0, heights: {}};
  let waitingSince = null;
  video.addEventListener('timeupdate', () => {
    if (marks.first_frame_ms === null && video.currentTime > 0) {
      marks.first_frame_ms = performance.now() - started;
    }
  });
  video.addEventListener('waiting', () => {
    if (marks.first_frame_ms !== null && waitingSince === null) {
      waitingSince = performance.now();
      marks.stalls += 1;
    }
  });
  video.addEventListener('playing', () => {
    if (waitingSince !== null) {
      marks.stalled_ms += performance.now() - waitingSince;
      waitingSince = null;
    }
  });
  video.src = src;
  video.play().catch((err) => { marks.play_error = String(err); });
  while (performance.now() - started < seconds * 1000 && !video.error && !video.ended) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    if (video.videoHeight && !video.paused) {
      marks.heights[video.videoHeight] = (marks.heights[video.videoHeight] || 0) + 0.25;
    }
  }
  if (waitingSince !== null) marks.stalled_ms += performance.now() - waitingSince;
  marks.played_seconds = video.currentTime;
  if (video.error) marks.error = String(video.error.code);
  video.removeAttribute('src');
  video.load();
  return marks;
}"""


@dataclass(frozen=True)
class Viewing:
    """What one viewing got: first frame, stalls, video played, heights shown (s per height)."""

    first_frame_seconds: float | None
    stalls: int
    stalled_seconds: float
    played_seconds: float
    heights: dict[str, float] = field(default_factory=dict)

    @property
    def settled_height(self) -> int | None:
        """The height shown longest: the rendition the player settled on."""
        if not self.heights:
            return None
        return int(max(self.heights.items(), key=lambda item: item[1])[0])


def watch(browser: Any, url: str, seconds: float) -> Viewing:
    """Play `url` for `seconds` of wall time in a fresh browser context (an empty cache)."""
    context = browser.new_context()
    try:
        marks = context.new_page().evaluate(WATCH, [url, seconds])
    finally:
        context.close()
        time.sleep(0.5)  # let the link drop what the closed connections left in flight
    if "error" in marks:
        raise RuntimeError(f"Chromium could not play {url}: media error {marks['error']}")
    first = marks["first_frame_ms"]
    return Viewing(
        None if first is None else round(first / 1000, 3),
        int(marks["stalls"]),
        round(marks["stalled_ms"] / 1000, 2),
        round(marks["played_seconds"], 2),
        {str(height): seconds for height, seconds in marks["heights"].items()},
    )
