"""An `abr` job proven in a real browser: a 720p moov-at-end recording goes up as a ladder, the
jobs page's details dialog plays its master playlist (Debian's Chromium plays HLS itself), each
rendition plays and seeks on its own, and over bench/link.py's emulated link at 2 Mbit/s the
player settles on a rendition below the link's rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from bench.link import Link, LinkProxy
from flows.runs import run_retry_flow
from tests.support.browser import CHROMIUM, SCREENSHOTS, needs_chromium
from tests.web.test_streaming_browser import PLAY_ON, SEEK
from upload_jobs.jobs.store import JobStore
from upload_jobs.media import samples
from upload_jobs.media.remux import resolve_ffmpeg
from upload_jobs.settings import Settings, get_settings

pytestmark = [
    pytest.mark.flow,
    pytest.mark.moto_only,  # where the job ends is S3; the RGW suite covers the upload itself
    pytest.mark.usefixtures("prefect_server"),
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
    needs_chromium,
]

LINK_BITS_PER_SECOND = 2_000_000

# Plays until `seconds` of video have played at the current rendition, then says its height.
SETTLE = """async ([video, seconds]) => {
  const deadline = performance.now() + 60000;
  while (video.currentTime < seconds && !video.ended) {
    if (video.error) return {error: video.error.code};
    if (performance.now() > deadline) return {error: 'stalled', at: video.currentTime};
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {error: null, height: video.videoHeight, at: video.currentTime};
}"""


def test_an_abr_ladder_plays_seeks_and_settles_below_a_2_mbit_link_in_chromium(
    settings: Settings, page_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("UPLOAD_JOBS_QUALITY_SAMPLE_SECONDS", "2")  # measured, not the point here
    get_settings.cache_clear()

    (tmp_path / "recordings").mkdir()
    source = samples.make_moov_at_end_mp4(
        tmp_path / "recordings" / "keynote.mp4", ffmpeg=resolve_ffmpeg(), seconds=12,
        size="1280x720",
    )  # fmt: skip
    store = JobStore(settings.database_url)
    job_id = store.add_job(str(source), "videos/keynote.mp4", requested_preset="abr").id or 0
    outcome = run_retry_flow(job_id)
    assert outcome.succeeded, outcome.message
    master_url = outcome.job.public_url
    assert master_url is not None and master_url.endswith("/videos/keynote/master.m3u8")
    renditions = store.list_attempts(job_id)[-1].renditions or []
    assert [r["height"] for r in renditions] == [720, 480, 360]
    base = master_url.rsplit("/", 1)[0]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.goto(page_url)
            page.locator(f'tr[data-job-id="{job_id}"] button.details').click()
            body = page.locator("#job-dialog-body")
            expect(body).to_contain_text("HLS: an adaptive ladder of renditions")
            expect(body.locator(".rendition")).to_have_count(3)
            expect(body).to_contain_text("PSNR")
            video = page.locator("#job-dialog-player video")
            expect(video).to_have_attribute("src", master_url)
            handle = video.element_handle()
            handle.evaluate("(video) => { video.muted = true; return video.play(); }")
            assert _run(handle, PLAY_ON, 0.5)["error"] is None
            seek = _run(handle, SEEK, 0.75)
            assert seek["duration"] == pytest.approx(12, abs=0.3)
            assert _run(handle, PLAY_ON, 0.4)["error"] is None
            page.screenshot(path=SCREENSHOTS / "job-details-hls-ladder.png")

            for rendition in renditions:  # each rung alone: plays, seeks, plays on
                handle.evaluate(
                    "(video, src) => { video.src = src; video.muted = true; return video.play(); }",
                    f"{base}/{rendition['name']}/index.m3u8",
                )
                assert _run(handle, PLAY_ON, 0.3)["error"] is None, rendition["name"]
                assert _run(handle, SEEK, 0.5)["at"] == pytest.approx(6, abs=0.6)
                assert _run(handle, PLAY_ON, 0.3)["error"] is None, rendition["name"]
                assert handle.evaluate("(video) => video.videoHeight") == rendition["height"]

            settled = _settled_height(browser, master_url)
        finally:
            browser.close()
    below = [r for r in renditions if r["bitrate"] < LINK_BITS_PER_SECOND]
    assert below, "the ladder has no rung below the link's rate"
    assert settled in {r["height"] for r in below}, (settled, renditions)


def _settled_height(browser: Any, master_url: str) -> int:
    """The picture height the player shows once it has played 8 s of the master playlist
    fetched through bench/link.py's emulated link (2 Mbit/s each way, 60 ms round trip)."""
    endpoint = urlsplit(master_url)
    link = LinkProxy(endpoint.hostname or "127.0.0.1", endpoint.port or 80,
                     Link(LINK_BITS_PER_SECOND / 1e6, 60)).start()  # fmt: skip
    through_link = master_url.replace(endpoint.netloc, f"127.0.0.1:{link.port}", 1)
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_content("<video muted playsinline></video>")
        handle = page.locator("video").element_handle()
        handle.evaluate("(video, src) => { video.src = src; return video.play(); }", through_link)
        settled = _run(handle, SETTLE, 8)
    finally:
        context.close()
    assert settled["error"] is None, settled
    assert link.bytes_to_clients > 0, "the video came through the emulated link"
    return int(settled["height"])


def _run(handle: Any, script: str, argument: float) -> dict[str, Any]:
    result: dict[str, Any] = handle.evaluate(
        f"(video, argument) => ({script})([video, argument])", argument
    )
    return result
