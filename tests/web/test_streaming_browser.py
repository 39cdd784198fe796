"""Proof of streaming in a real browser: a moov-at-end recording goes up through the flow, and its
uploaded object plays in the jobs page's details dialog (Debian's Chromium, against the local S3
server), seeks to 80 % and plays on; the page shows the startup cost before and after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flows.runs import run_retry_flow
from tests.support.browser import CHROMIUM, SCREENSHOTS, needs_chromium
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.media import samples
from upload_jobs.media.remux import resolve_ffmpeg
from upload_jobs.settings import Settings

pytestmark = [
    pytest.mark.flow,
    pytest.mark.usefixtures("prefect_server"),
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
    needs_chromium,
]

# Resolves once the video has played `seconds` past where it was, or says why it could not.
PLAY_ON = """async ([video, seconds]) => {
  const from = video.currentTime;
  const deadline = performance.now() + 15000;
  while (video.currentTime < from + seconds) {
    if (video.error) return {error: video.error.code, at: video.currentTime};
    if (performance.now() > deadline) return {error: 'stalled', at: video.currentTime};
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {error: null, at: video.currentTime};
}"""

SEEK = """async ([video, fraction]) => {
  const seeked = new Promise((resolve) => video.addEventListener('seeked', resolve, {once: true}));
  video.currentTime = video.duration * fraction;
  await seeked;
  return {duration: video.duration, at: video.currentTime};
}"""

# A video from anywhere but the public base URL is refused by the page's policy.
FOREIGN_MEDIA = """(src) => new Promise((resolve) => {
  document.addEventListener('securitypolicyviolation',
    (event) => resolve(event.effectiveDirective), {once: true});
  const video = document.createElement('video');
  video.src = src;
  document.body.append(video);
  setTimeout(() => resolve('allowed'), 5000);
})"""


def test_an_uploaded_moov_at_end_recording_plays_and_seeks_in_chromium(
    settings: Settings, page_url: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    (tmp_path / "recordings").mkdir()
    source = samples.make_moov_at_end_mp4(
        tmp_path / "recordings" / "lecture.mp4", ffmpeg=resolve_ffmpeg(), seconds=6
    )
    store = JobStore(settings.database_url)
    job_id = store.add_job(str(source), "videos/lecture.mp4", JobStatus.FAILED).id or 0
    outcome = run_retry_flow(job_id)
    assert outcome.succeeded, outcome.message
    public_url = outcome.job.public_url
    assert public_url is not None
    media_ranges: list[str] = []
    console_errors: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else 0)
            page.on(
                "request",
                lambda r: (
                    media_ranges.append(r.headers.get("range", "")) if r.url == public_url else 0
                ),
            )
            page.goto(page_url)
            expect(page.locator("#stats-summary")).to_contain_text("1 of 1 completed job optimized")
            expect(page.locator("#stats-histogram rect.bar-after")).not_to_have_count(0)
            page.screenshot(path=SCREENSHOTS / "jobs-page-streaming-panel.png")

            page.locator(f'tr[data-job-id="{job_id}"] button.details').click()
            body = page.locator("#job-dialog-body")
            expect(body).to_contain_text("index (moov) moved to the front in process")
            expect(body).to_contain_text("before the first frame (3 requests → 1)")
            video = page.locator("#job-dialog-player video")
            expect(video).to_have_attribute("src", public_url)
            handle = video.element_handle()
            handle.evaluate("(video) => { video.muted = true; return video.play(); }")
            started = _evaluate(handle, PLAY_ON, 0.5)
            assert started["error"] is None, f"the upload did not play: {started}"
            seek = _evaluate(handle, SEEK, 0.8)
            assert seek["duration"] == pytest.approx(6, abs=0.2)
            assert seek["at"] == pytest.approx(0.8 * seek["duration"], abs=0.3)
            went_on = _evaluate(handle, PLAY_ON, 0.4)
            assert went_on["error"] is None, f"no playback after the seek: {went_on}"
            page.screenshot(path=SCREENSHOTS / "job-details-player.png")

            foreign = f"{settings.endpoint_url}/another-bucket/video.mp4"
            assert page.evaluate(FOREIGN_MEDIA, foreign) == "media-src"
        finally:
            browser.close()
    # The uploaded file needs no jump to its end: the browser starts reading it at byte 0.
    assert media_ranges and media_ranges[0] == "bytes=0-"
    assert [e for e in console_errors if "Content Security Policy" not in e] == []


def _evaluate(handle: Any, script: str, argument: float) -> dict[str, Any]:
    result: dict[str, Any] = handle.evaluate(
        f"(video, argument) => ({script})([video, argument])", argument
    )
    return result
