"""The jobs page in a real browser (Playwright driving Debian's Chromium): see the OPTIMIZED chip,
retry a failed job through the confirmation, see the toast and the job turn completed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.browser import CHROMIUM, SCREENSHOTS, needs_chromium
from upload_jobs.jobs.attempt_report import AttemptReport, StoredObject
from upload_jobs.jobs.claims import new_lease_owner
from upload_jobs.jobs.models import JobStatus
from upload_jobs.jobs.store import JobStore
from upload_jobs.settings import Settings

HOSTILE_NAME = '<img src=x onerror="window.__xss = 1">.mp4'

# What these test (the page and its API) does not depend on S3: moto only.
pytestmark = [
    pytest.mark.flow,
    pytest.mark.usefixtures("prefect_server"),
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
    needs_chromium,
    pytest.mark.moto_only,
]


def add_completed_optimized_job(store: JobStore, source: Path) -> int:
    job = store.add_job(str(source), "videos/earlier.mp4", JobStatus.FAILED)
    claim = store.claim_job(job.id or 0, new_lease_owner(), timedelta(minutes=5), "earlier-run")
    report = AttemptReport(preset="faststart", optimized=True, source_size_bytes=1000)
    report.uploaded_size_bytes = 990
    store.mark_completed(claim, report, StoredObject("https://cdn.test/videos/earlier.mp4", "e"))
    return job.id or 0


def test_retry_from_the_page_until_completed(
    settings: Settings, clip: Callable[[str, str], Path], page_url: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    store = JobStore(settings.database_url)
    earlier = add_completed_optimized_job(store, clip("faststart", "earlier.mp4"))
    store.add_job(
        str(tmp_path / HOSTILE_NAME), "videos/hostile.mp4", JobStatus.FAILED, HOSTILE_NAME
    )
    failed = store.add_job(
        str(clip("moov_at_end", "Camera Roll é.mp4")),
        "videos/Camera Roll é.mp4",
        JobStatus.FAILED,
        last_error="Upload interrupted: connection reset by peer",
    ).id
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    console_errors: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.on(
                "console",
                lambda message: (
                    console_errors.append(message.text) if message.type == "error" else None
                ),
            )
            page.goto(page_url)
            done_row = page.locator(f'tr[data-job-id="{earlier}"]')
            expect(done_row.locator(".chip.optimized")).to_have_text("OPTIMIZED")
            expect(done_row.locator(".chip.status-completed")).to_be_visible()
            # A hostile file name is shown as text and runs nothing.
            expect(page.get_by_text(HOSTILE_NAME, exact=True).first).to_be_visible()
            assert page.evaluate("window.__xss") is None

            row = page.locator(f'tr[data-job-id="{failed}"]')
            expect(row.locator(".chip.status-failed")).to_be_visible()
            row.locator("button.retry").click()
            dialog = page.locator("#confirm-dialog")
            expect(dialog).to_be_visible()
            expect(page.locator("#confirm-message")).to_contain_text(f"Retry upload job {failed}")
            page.locator("#confirm-ok").click()
            expect(page.locator("#toast .toast-success")).to_have_text(
                f"Upload job {failed} queued for retry with streaming optimization"
            )
            # No reload: the page polls, and the row turns completed and optimized by itself.
            expect(row.locator(".chip.status-completed")).to_be_visible(timeout=90_000)
            expect(row.locator(".chip.optimized")).to_be_visible()
            page.screenshot(path=SCREENSHOTS / "jobs-page-after-retry.png", full_page=True)

            row.locator("button.details").click()
            history = page.locator("#job-dialog #attempts tbody tr")
            expect(history).to_have_count(1)
            expect(history.first).to_contain_text("completed")
            page.screenshot(path=SCREENSHOTS / "job-details.png")

            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.goto(page_url)
            expect(phone.locator(f'tr[data-job-id="{failed}"] .chip.optimized')).to_be_visible()
            assert phone.evaluate("document.documentElement.scrollWidth") <= 390
            phone.screenshot(path=SCREENSHOTS / "jobs-page-phone.png", full_page=True)
        finally:
            browser.close()
    assert console_errors == []
    job = store.get_job(failed or 0)
    assert (job.status, job.optimized_for_streaming) == (JobStatus.COMPLETED, True)
